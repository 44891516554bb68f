"""posterq.output_files on real files: names a file system cannot take, and a folder that becomes a
link between the roots' check and the write (the race tests/service/test_outputs.py cannot time)."""

import os

import pytest
from samples import deep_folder

from posterq import output_files
from posterq.exceptions import OutputError


def _fill(stream) -> None:
    stream.write("path,genres\n")


def test_a_name_or_path_the_file_system_cannot_take_is_refused(tmp_path):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    with pytest.raises(OutputError) as long_name:
        output_files.check_new(tmp_path / ("n" * (name_max + 1) + ".csv"), overwrite=False)
    assert long_name.value.code == "output_name_too_long"
    folder = deep_folder(tmp_path, os.pathconf(tmp_path, "PC_PATH_MAX") - 100)
    with pytest.raises(OutputError) as long_path:
        output_files.check_new(folder / ("p" * 150 + ".csv"), overwrite=False)
    assert long_path.value.code == "output_path_too_long"
    output_files.check_new(tmp_path / "fine.csv", overwrite=False)  # a usable name passes


def test_an_existing_file_or_folder_is_refused_unless_overwrite_and_a_file(tmp_path):
    (tmp_path / "kept.csv").write_text("kept\n")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(OutputError) as exists:
        output_files.check_new(tmp_path / "kept.csv", overwrite=False)
    assert (exists.value.code, exists.value.permanent) == ("output_exists", True)
    output_files.check_new(tmp_path / "kept.csv", overwrite=True)
    for overwrite in (False, True):
        with pytest.raises(OutputError) as folder:
            output_files.check_new(tmp_path / "folder.csv", overwrite=overwrite)
        assert folder.value.code == "output_is_directory"


def test_a_folder_that_is_a_link_is_never_entered(tmp_path):
    real, elsewhere = tmp_path / "real", tmp_path / "elsewhere"
    real.mkdir()
    elsewhere.mkdir()
    (real / "team").symlink_to(elsewhere)
    # As if the roots were checked before the folder became a link: the write is refused.
    with pytest.raises(OutputError) as changed:
        output_files.write(real / "team" / "genres.csv", overwrite=True, fill=_fill)
    assert changed.value.code == "output_folder_changed"
    assert list(elsewhere.iterdir()) == []


def test_a_write_puts_the_whole_file_in_place_and_leaves_no_temporary(tmp_path):
    output_files.write(tmp_path / "genres.csv", overwrite=False, fill=_fill)
    assert (tmp_path / "genres.csv").read_text() == "path,genres\n"
    with pytest.raises(OutputError) as exists:
        output_files.write(tmp_path / "genres.csv", overwrite=False, fill=lambda stream: stream.write("x\n"))
    assert exists.value.code == "output_exists"
    output_files.write(tmp_path / "genres.csv", overwrite=True, fill=lambda stream: stream.write("new\n"))
    assert (tmp_path / "genres.csv").read_text() == "new\n"
    assert [path.name for path in tmp_path.iterdir()] == ["genres.csv"]


def test_a_failing_fill_leaves_nothing_behind(tmp_path):
    def broken(stream):
        stream.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError) as failed:
        output_files.write(tmp_path / "genres.csv", overwrite=False, fill=broken)
    assert (failed.value.code, failed.value.permanent) == ("output_write_failed", False)
    assert list(tmp_path.iterdir()) == []
