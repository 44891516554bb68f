"""Property-based checks of the HTTP API against its own OpenAPI document (schemathesis), over real HTTP."""

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import ignored_auth

from .openapi_checks import answers_as_documented


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """A worker, so that POST /analysis/ of a schema-made image is answered (not a 504 timeout)."""
    return start_worker("fuzz-worker@test")


def test_every_route_answers_as_documented(api):
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        # This API has no keys, so it answers requests without one: ignored_auth is
        # test_api_keys.py's, against an API with keys.
        answers_as_documented(operation, ignored_auth)
