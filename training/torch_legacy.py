"""Read a PyTorch state dict saved in the legacy (pre-zip) format, without PyTorch.

The legacy file is a sequence of pickles: a magic number, a protocol version, system info,
the object itself (tensors refer to storages by persistent id), the list of storage keys,
then each storage's raw bytes preceded by its element count.
"""

import collections
import pickle
import struct
from dataclasses import dataclass

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class LegacyFormatError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader understands."""


@dataclass
class _Storage:
    key: str
    dtype: type
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def materialize(self) -> np.ndarray:
        # Honour strides: several kernels are stored transposed, so a plain reshape is wrong.
        flat = self.storage.data
        itemsize = flat.dtype.itemsize
        if not self.size:
            return flat[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=None, hooks=None, *unused):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle, storages):
        super().__init__(handle)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise LegacyFormatError(f"unexpected class {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage":
            raise LegacyFormatError(f"unexpected persistent id {kind!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise LegacyFormatError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(key, _STORAGE_DTYPES[storage_type])
        return self.storages[key]


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Return {name: numpy array} from a legacy-format PyTorch state dict file."""
    with open(path, "rb") as handle:
        if handle.read(2) == b"PK":
            raise LegacyFormatError(f"{path} is a zip checkpoint, not the legacy format")
        handle.seek(0)
        if pickle.load(handle) != MAGIC_NUMBER:
            raise LegacyFormatError(f"{path} lacks the legacy magic number")
        if pickle.load(handle) != PROTOCOL_VERSION:
            raise LegacyFormatError(f"{path} has an unknown protocol version")
        pickle.load(handle)  # system info: endianness and type sizes, little-endian assumed
        storages: dict[str, _Storage] = {}
        result = _Unpickler(handle, storages).load()
        keys = pickle.load(handle)
        for key in keys:
            (count,) = struct.unpack("<q", handle.read(8))
            storage = storages[key]
            nbytes = count * np.dtype(storage.dtype).itemsize
            storage.data = np.frombuffer(handle.read(nbytes), dtype=storage.dtype, count=count)
    return {name: ref.materialize() for name, ref in result.items() if isinstance(ref, _TensorRef)}
