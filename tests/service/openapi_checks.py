"""One operation of the API's OpenAPI document, driven by schemathesis with generated requests."""

from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free


def answers_as_documented(operation, *excluded) -> None:
    """Send generated requests to the operation; fail on any answer its document does not allow.

    Driven by hand rather than by schemathesis' pytest plugin, which does not load under pytest 9.
    Always excluded: DELETE keeps the job record as `cancelled` on purpose (pollers see what
    happened), which use_after_free calls a bug; /readyz answers 503 without a worker, as
    documented; and no schema can say "a real zip archive", so a schema-valid upload may still be
    refused (400). `excluded`: more checks to leave out.
    """
    skipped = [use_after_free, *excluded]
    if operation.path == "/readyz":
        skipped.append(not_a_server_error)
    if operation.method.upper() == "POST":
        skipped.append(positive_data_acceptance)

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers(case):
        case.call_and_validate(excluded_checks=skipped)

    answers()
