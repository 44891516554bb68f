"""posterq.config: defaults, POSTERQ_* overrides, validation, and which paths a data root admits."""

import os

import pytest

from posterq.config import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_DIR,
    MAX_FILE_BYTES,
    Settings,
    available_cores,
    model_from_env,
)
from posterq.exceptions import PosterqError


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.max_file_bytes == MAX_FILE_BYTES and settings.data_roots == ()
    assert settings.model_path == DEFAULT_MODEL_DIR


def test_environment_overrides_defaults_and_keywords_override_both(tmp_path):
    environ = {"POSTERQ_BATCH_SIZE": "8", "POSTERQ_MAX_BATCH_WAIT": "0.2", "POSTERQ_QUEUE": "q2",
               "POSTERQ_MODEL": str(tmp_path), "POSTERQ_THREADS": "",  # empty means unset
               "POSTERQ_DATA_ROOTS": f"{tmp_path}{os.pathsep}{tmp_path / 'b'}"}
    settings = Settings.from_env(environ, queue="q3")
    assert (settings.batch_size, settings.max_batch_wait, settings.queue) == (8, 0.2, "q3")
    assert settings.threads == Settings().threads
    assert settings.model_path == tmp_path
    assert settings.data_roots == (tmp_path.resolve(), (tmp_path / "b").resolve())


@pytest.mark.parametrize("name, value, says", [
    ("POSTERQ_BATCH_SIZE", "many", "is not a int"),
    ("POSTERQ_BATCH_SIZE", "0", "POSTERQ_BATCH_SIZE must be positive"),
    ("POSTERQ_UPLOAD_TTL", "-1", "POSTERQ_UPLOAD_TTL must be positive"),
    ("POSTERQ_MAX_BATCH_WAIT", "-0.5", "must not be negative"),
    ("POSTERQ_THREADS", "-2", "must not be negative"),
])
def test_bad_values_are_refused_naming_the_variable(name, value, says):
    with pytest.raises(PosterqError) as caught:
        Settings.from_env({name: value})
    assert caught.value.code == "bad_config" and says in caught.value.message


def test_the_model_is_read_without_the_service_settings(tmp_path):
    # The core reads POSTERQ_MODEL alone, as Settings does, and ignores settings it does not use.
    assert model_from_env({}) == DEFAULT_MODEL_DIR
    assert model_from_env({"POSTERQ_MODEL": DEFAULT_MODEL}) == DEFAULT_MODEL_DIR
    environ = {"POSTERQ_MODEL": str(tmp_path), "POSTERQ_BATCH_SIZE": "nonsense"}
    assert model_from_env(environ) == tmp_path
    assert Settings.from_env({"POSTERQ_MODEL": str(tmp_path)}).model_path == tmp_path


def test_available_cores_is_at_least_one_and_at_most_the_machine():
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


@pytest.fixture
def roots(tmp_path):
    """A data root with a poster in it, a secret beside it, and a root reached through a symlink."""
    root = tmp_path / "root"
    (root / "posters").mkdir(parents=True)
    (root / "posters" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (tmp_path / "linked").symlink_to(root, target_is_directory=True)
    return tmp_path


def _code(settings: Settings, path) -> str | None:
    try:
        settings.resolve_data_path(path)
    except PosterqError as exc:
        return exc.code
    return None


def test_a_path_under_a_root_is_admitted(roots):
    settings = Settings().replace(data_roots=str(roots / "root"))
    poster = roots / "root" / "posters" / "a.jpg"
    assert settings.resolve_data_path(poster) == poster
    assert settings.resolve_data_path(roots / "root") == roots / "root"


def test_dot_dot_and_absolute_paths_outside_the_roots_are_refused(roots):
    settings = Settings().replace(data_roots=str(roots / "root"))
    assert _code(settings, roots / "root" / "posters" / ".." / ".." / "secret.jpg") == "path_outside_roots"
    assert _code(settings, roots / "secret.jpg") == "path_outside_roots"
    assert _code(settings, "/etc/passwd") == "path_outside_roots"
    # A sibling whose name starts like the root is not under it.
    (roots / "root-other").mkdir()
    assert _code(settings, roots / "root-other") == "path_outside_roots"


def test_a_symlink_that_escapes_a_root_is_refused(roots):
    (roots / "root" / "posters" / "escape.jpg").symlink_to(roots / "secret.jpg")
    settings = Settings().replace(data_roots=str(roots / "root"))
    assert _code(settings, roots / "root" / "posters" / "escape.jpg") == "path_outside_roots"


def test_a_root_that_is_itself_a_symlink_admits_what_lies_under_its_target(roots):
    settings = Settings().replace(data_roots=str(roots / "linked"))
    assert settings.data_roots == ((roots / "root").resolve(),)
    assert _code(settings, roots / "linked" / "posters" / "a.jpg") is None
    assert _code(settings, roots / "root" / "posters" / "a.jpg") is None
    assert _code(settings, roots / "linked" / ".." / "secret.jpg") == "path_outside_roots"


def test_no_roots_and_nul_bytes_are_refused(roots):
    assert _code(Settings(), roots / "root") == "no_data_roots"
    settings = Settings().replace(data_roots=str(roots / "root"))
    assert _code(settings, f"{roots}/root/a\x00.jpg") == "bad_path"
