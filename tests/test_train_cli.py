"""`posterq train`'s options, checked before any training starts (a real subprocess)."""

import pytest
from commands import posterq


@pytest.mark.parametrize("size", ["3x", "576", "axb", "16x16"])
def test_a_bad_input_size_is_refused_with_a_clear_message(size, tmp_path):
    result = posterq("train", "--data", str(tmp_path), "--input-size", size)
    assert result.returncode == 2
    assert "--input-size" in result.stderr and size in result.stderr


def test_the_input_size_option_is_documented():
    result = posterq("train", "--help")
    assert result.returncode == 0 and "--input-size HxW" in result.stdout
