"""The legacy PyTorch reader: hand-built checkpoints (strides included) and the real weights file."""

import pickle
import struct
import sys
import types

import numpy as np
import pytest

from posterq.training.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION, LegacyFormatError, load_state_dict


class _FakeStorage:
    """Stands for torch.FloatStorage when writing a checkpoint the way torch.save's legacy path does."""


def _rebuild_tensor_v2(*args):  # pragma: no cover - only its pickled name matters
    raise AssertionError


class _Tensor:
    def __init__(self, key, offset, size, stride):
        self.args = (("storage", _FakeStorage, key, "cpu", 0), offset, size, stride, False, {})

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "storage":
            return obj
        return None


@pytest.fixture
def fake_torch(monkeypatch):
    """Register the names a legacy checkpoint refers to, so the test can pickle one."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    _FakeStorage.__module__, _FakeStorage.__qualname__ = "torch", "FloatStorage"
    torch.FloatStorage = _FakeStorage
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def _write_checkpoint(path, tensors: dict, storages: dict):
    with open(path, "wb") as handle:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        _Pickler(handle, protocol=2).dump(tensors)
        pickle.dump(list(storages), handle, protocol=2)
        for data in storages.values():
            handle.write(struct.pack("<q", data.size))
            handle.write(data.astype("<f4").tobytes())


def test_reads_contiguous_and_strided_tensors(tmp_path, fake_torch):
    data = np.arange(24, dtype=np.float32)
    kernel = data.reshape(2, 3, 4)
    tensors = {
        "plain": _Tensor("0", 0, (2, 3, 4), (12, 4, 1)),
        # The transpose of a (4, 6) matrix, stored without copying: strides (1, 6) for shape (6, 4).
        "transposed": _Tensor("0", 0, (6, 4), (1, 6)),
        "offset": _Tensor("0", 12, (3, 4), (4, 1)),
    }
    path = tmp_path / "legacy.pth"
    _write_checkpoint(path, tensors, {"0": data})
    state = load_state_dict(path)
    np.testing.assert_array_equal(state["plain"], kernel)
    np.testing.assert_array_equal(state["transposed"], data.reshape(4, 6).T)
    np.testing.assert_array_equal(state["offset"], kernel[1])
    assert state["transposed"].flags["C_CONTIGUOUS"]


def test_refuses_files_that_are_not_legacy_checkpoints(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(LegacyFormatError, match="zip"):
        load_state_dict(zipped)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps(12345))
    with pytest.raises(LegacyFormatError, match="magic"):
        load_state_dict(other)


def test_reads_the_shipped_effnet_weights():
    from posterq.training.effnet_port import weights_file

    state = load_state_dict(weights_file())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    # Variances are never negative: reading the wrong bytes or strides would scramble them.
    assert all((value >= 0).all() for key, value in state.items() if key.endswith("running_var"))
