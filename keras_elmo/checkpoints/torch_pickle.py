"""Read a PyTorch state dict (`torch.save(module.state_dict(), path)`) without PyTorch.

`load_state_dict(path)` -> dict of name -> numpy array, for the two formats
`torch.save` has written since 0.4:

- legacy (torch < 1.6, and `_use_new_zipfile_serialization=False`): a run of
  pickles in one file: magic number, protocol version, system info, the
  object, the list of storage keys; then each storage's raw bytes in that
  order (an int64 element count, then the elements);
- zip (torch >= 1.6): a zip archive `<name>/data.pkl` (the object) with one
  record `<name>/data/<key>` of raw bytes per storage, and `<name>/byteorder`.

A pickle can call any importable function while it loads (`os.system` is
one pickle opcode away), so the object is read by an Unpickler whose
`find_class` knows only what a state dict of tensors needs: the OrderedDict,
torch's tensor rebuild functions (mapped to functions here that only record
storage, offset, size and stride) and the storage types (mapped to numpy
dtypes). Anything else refuses the whole file with an error naming it. The
result must then be a mapping of str -> tensor, nothing else.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from keras_elmo.errors import InputError, MissingFileError

# torch.serialization's constants for the legacy format.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# Storage type name -> numpy dtype (little-endian; byte-swapped when a zip
# archive says "big"). BFloat16 has no numpy dtype: read as uint16 bits and
# widened to float32 below.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafeCheckpointError(InputError):
    """The file holds something other than a state dict of tensors."""


class _Frozen:
    """Refuses the pickle BUILD opcode, so a stream cannot rewrite our objects."""

    def __setstate__(self, state):
        raise UnsafeCheckpointError("the pickle tries to set the state of a tensor part.")


class _StorageType(_Frozen):
    """Stands for `torch.<Name>Storage` in the pickle; not callable."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage(_Frozen):
    """A storage named by the pickle; its bytes arrive later (legacy) or from a record (zip)."""

    def __init__(self, key, storage_type, numel, view_offset=0):
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.view_offset = view_offset  # legacy views: elements into the root storage
        self.array = None


class _Tensor(_Frozen):
    """What a tensor rebuild call recorded; turned into numpy once storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


def _ints(value, what, path):
    if not isinstance(value, tuple) and not isinstance(value, list):
        value = (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise UnsafeCheckpointError(
            f"{path}: a tensor's {what} is not non-negative ints: {value!r}"
        )
    return tuple(value)


def _rebuild_tensor(path):
    def rebuild(storage, storage_offset, size, stride, *rest):
        # v1 (torch <= 0.3): (storage, offset, size, stride); v2 (0.4+) adds
        # requires_grad, backward_hooks and (1.x) metadata: ignored, they carry
        # no numbers. (`rest` items were themselves built by this unpickler.)
        if not isinstance(storage, _Storage):
            raise UnsafeCheckpointError(f"{path}: a tensor rebuild got {type(storage).__name__}.")
        if len(rest) > 3:
            raise UnsafeCheckpointError(f"{path}: a tensor rebuild got {4 + len(rest)} arguments.")
        size, stride = _ints(size, "size", path), _ints(stride, "stride", path)
        if len(size) != len(stride):
            raise UnsafeCheckpointError(f"{path}: a tensor has size {size} but stride {stride}.")
        return _Tensor(storage, _ints(storage_offset, "offset", path)[0], size, stride)

    return rebuild


def _rebuild_parameter(path):
    def rebuild(data, requires_grad=False, backward_hooks=None):
        # state_dict(keep_vars=True) pickles Parameters around the tensors.
        if not isinstance(data, _Tensor):
            raise UnsafeCheckpointError(f"{path}: a parameter rebuild got {type(data).__name__}.")
        return data

    return rebuild


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a state dict of tensors uses; see the module docstring."""

    def __init__(self, file, path, persistent_load):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._persistent = persistent_load
        self._allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor"): _rebuild_tensor(path),
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor(path),
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter(path),
        }
        for name in STORAGE_DTYPES:
            # A model saved on a GPU names torch.cuda's storage types (the
            # numbers are the same; torch.load maps them to the CPU).
            self._allowed[("torch", name)] = self._allowed[("torch.cuda", name)] = _StorageType(
                name
            )

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._path}: refusing to load: the pickle asks for {module}.{name}, which a "
                "state dict of tensors never needs (a pickle can run code while it loads; only "
                "tensors, OrderedDict and torch's tensor rebuild functions are accepted)."
            ) from None

    def persistent_load(self, pid):
        return self._persistent(pid)


def _unpickle(file, path, persistent_load):
    try:
        return _RestrictedUnpickler(file, path, persistent_load).load()
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # a malformed or hostile stream: say so, never a raw trace
        raise UnsafeCheckpointError(
            f"{path}: not a PyTorch state dict of tensors ({type(err).__name__}: {err})."
        ) from None


def _storage_from_pid(path, storages):
    """The persistent-id handler: ('storage', type, key, location, numel[, view])."""

    def load(pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) not in (5, 6):
            raise UnsafeCheckpointError(
                f"{path}: refusing to load: unexpected persistent id {str(pid)[:80]!r} "
                "(only tensor storages are accepted; whole pickled modules are not)."
            )
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{path}: a storage has type {storage_type!r}.")
        if not isinstance(key, str) or isinstance(numel, bool) or not isinstance(numel, int):
            raise UnsafeCheckpointError(f"{path}: malformed storage entry {str(pid)[:80]!r}.")
        view = pid[5] if len(pid) == 6 else None
        root = storages.get(key)
        if root is None:
            root = storages[key] = _Storage(key, storage_type, numel)
        if view is None:
            return root
        # torch 0.4's legacy format: (view_key, offset, view_size) of a root storage.
        if not isinstance(view, tuple) or len(view) != 3:
            raise UnsafeCheckpointError(f"{path}: malformed storage view {view!r}.")
        _, offset, view_size = view
        offset, view_size = _ints((offset, view_size), "storage view", path)
        return _Storage(key, storage_type, view_size, view_offset=offset)

    return load


def _materialize(obj, path, storages):
    """The unpickled object -> OrderedDict of name -> numpy array, or a clear error."""
    if not isinstance(obj, dict):
        raise UnsafeCheckpointError(
            f"{path}: expected a state dict (names -> tensors), got {type(obj).__name__}; "
            "save `module.state_dict()`, not the module."
        )
    out = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _Tensor):
            raise UnsafeCheckpointError(
                f"{path}: state dict entry {name!r} is a {type(value).__name__}, not a tensor."
            )
        root = storages[value.storage.key]
        if root.array is None:
            raise UnsafeCheckpointError(f"{path}: storage {root.key!r} has no data.")
        itemsize = root.array.dtype.itemsize
        start = value.storage.view_offset + value.offset
        # The furthest element the strides reach must lie inside the storage.
        last = start + sum((n - 1) * s for n, s in zip(value.size, value.stride) if n > 0)
        count = int(np.prod(value.size, dtype=np.int64))
        if count and (last >= root.array.size or count > root.array.size):
            raise UnsafeCheckpointError(
                f"{path}: tensor {name!r} reaches past the end of its storage."
            )
        if count == 0:
            array = np.zeros(value.size, root.array.dtype)
        else:
            array = np.lib.stride_tricks.as_strided(
                root.array[start:],
                shape=value.size,
                strides=tuple(s * itemsize for s in value.stride),
                writeable=False,
            ).copy()
        if value.storage.type.name == "BFloat16Storage":
            # bfloat16 is the top half of a float32.
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out[name] = array
    return out


def _read_legacy(f, path):
    size = os.fstat(f.fileno()).st_size
    magic = _unpickle(f, path, _no_persistent(path, "magic number"))
    if magic != LEGACY_MAGIC:
        raise InputError(f"{path}: not a PyTorch file (bad magic number).")
    protocol = _unpickle(f, path, _no_persistent(path, "protocol version"))
    if protocol != LEGACY_PROTOCOL:
        raise InputError(f"{path}: unsupported PyTorch legacy protocol {protocol!r}.")
    sys_info = _unpickle(f, path, _no_persistent(path, "system info"))
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise InputError(f"{path}: written on a big-endian machine; not supported.")
    storages = {}
    obj = _unpickle(f, path, _storage_from_pid(path, storages))
    keys = _unpickle(f, path, _no_persistent(path, "storage key list"))
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise UnsafeCheckpointError(f"{path}: the storage key list does not match the object.")
    for key in keys:
        storage = storages[key]
        raw = f.read(8)
        if len(raw) != 8:
            raise InputError(f"{path}: truncated before storage {key!r}.")
        (numel,) = struct.unpack("<q", raw)
        nbytes = numel * storage.type.dtype.itemsize
        if numel != storage.numel or nbytes > size - f.tell():
            raise InputError(
                f"{path}: storage {key!r} holds {numel} elements, expected {storage.numel} "
                "(truncated or corrupt file)."
            )
        storage.array = np.frombuffer(f.read(nbytes), dtype=storage.type.dtype)
    return _materialize(obj, path, storages)


def _no_persistent(path, what):
    def load(pid):
        raise UnsafeCheckpointError(f"{path}: unexpected persistent id in the {what}.")

    return load


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise InputError(
                f"{path}: a zip file but not a torch.save archive (no <name>/data.pkl)."
            )
        prefix = pickles[0][: -len("data.pkl")]
        order = "little"
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        storages = {}
        obj = _unpickle(
            io.BytesIO(archive.read(pickles[0])), path, _storage_from_pid(path, storages)
        )
        for key, storage in storages.items():
            record = f"{prefix}data/{key}"
            if record not in names:
                raise InputError(f"{path}: storage record {record!r} is missing.")
            dtype = storage.type.dtype.newbyteorder("<" if order == "little" else ">")
            expected = storage.numel * dtype.itemsize
            size = archive.getinfo(record).file_size
            if size != expected:  # checked before reading: a record may be a zip bomb
                raise InputError(f"{path}: storage {key!r} has {size} bytes, expected {expected}.")
            data = archive.read(record)
            storage.array = np.frombuffer(data, dtype=dtype).astype(storage.type.dtype)
    return _materialize(obj, path, storages)


def load_state_dict(path):
    """A `torch.save`d state dict -> OrderedDict of name -> numpy array (no torch needed).

    Raises `UnsafeCheckpointError` (an InputError, a ValueError) for anything
    but a mapping of names to tensors, and InputError for files that are not
    torch saves.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"PyTorch state dict not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":  # a zip archive's first local header, as torch checks
            return _read_zip(path)
        f.seek(0)
        if f.read(512)[257:262] == b"ustar":
            raise InputError(
                f"{path}: a torch < 0.1.10 tar checkpoint; not supported (load it with that "
                "torch and save it again)."
            )
        f.seek(0)
        return _read_legacy(f, path)
