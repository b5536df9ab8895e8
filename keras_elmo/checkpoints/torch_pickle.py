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

Before any object is built, the opcode stream is scanned
(`pickletools.genops`, which builds none) with a small model of the
unpickler's stack: only the opcodes a state dict needs, only the names
`find_class` knows, nesting at most MAX_NESTING deep, at most MAX_OPCODES
opcodes and MAX_ITEMS items in a container, str or int dict keys, memo
indices below MAX_OPCODES, no container changed after it was used. (A key
nested a million tuples deep crashed the interpreter while it was hashed.)
Sizes are capped before they are read: the pickle by MAX_PICKLE_BYTES, a
zip's byteorder record by MAX_BYTEORDER_BYTES, the storages together by
MAX_STORAGE_BYTES (the model size limit, 4 GiB). Each storage is read once,
into one array, and every tensor is a read-only numpy view of it (offset,
shape, strides from the rebuild call, checked to lie inside the storage).
Every failure is an `InputError` (an `UnsafeCheckpointError` for what a
state dict never holds) of one line.
"""

import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.options import MAX_PARAMETERS

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


# Bounds on what a file may ask for before anything is built or read.
MAX_PICKLE_BYTES = 16 << 20  # one pickle (data.pkl; each legacy pickle)
MAX_BYTEORDER_BYTES = 16  # a zip's byteorder record: "little" or "big"
MAX_STORAGE_BYTES = 4 * MAX_PARAMETERS  # all storages together (4 GiB)
MAX_OPCODES = 1_000_000  # a large state dict needs tens of thousands
MAX_NESTING = 100  # torch's state dicts nest about 6 deep
MAX_ITEMS = 100_000  # items in one tuple, list or dict
MAX_DIMS = 64  # numpy's limit on a tensor's dimensions
_MAX_INT = 1 << 62  # a size, stride or offset
_READ_CHUNK = 1 << 20  # bytes read from a zip record at a time


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
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_INT for v in value
    ):
        raise UnsafeCheckpointError(
            f"{path}: a tensor's {what} is not ints from 0 to 2**62: {_short(value)}"
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


# -------------------------------------------------------------- the scan
_REBUILDS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"}
# (module, name) -> what a REDUCE on it makes ("odict", "tensor"; None: not callable).
_NAMES = {("collections", "OrderedDict"): "odict"}
_NAMES.update({("torch._utils", name): "tensor" for name in _REBUILDS})
_NAMES.update({(m, name): None for m in ("torch", "torch.cuda") for name in STORAGE_DTYPES})

# Opcodes that push one plain value (their kind); the rest are handled one by one.
_ATOMS = {
    "NONE": "none",
    "NEWTRUE": "bool",
    "NEWFALSE": "bool",
    "BININT": "int",
    "BININT1": "int",
    "BININT2": "int",
    "LONG1": "int",
    "LONG4": "int",
    "BINFLOAT": "float",
    "BINUNICODE": "str",
    "SHORT_BINUNICODE": "str",
    "BINUNICODE8": "str",
    "BINSTRING": "str",  # Python 2 str, decoded as UTF-8
    "SHORT_BINSTRING": "str",
}
_CONTAINERS = {"tuple", "list", "dict", "odict"}


class _Node:
    """One object the unpickler would build: its kind, how deeply it nests, whether it is used."""

    __slots__ = ("kind", "depth", "items", "used", "text")

    def __init__(self, kind, depth=0, text=None):
        self.kind, self.depth, self.items, self.used, self.text = kind, depth, 0, False, text


class _Scan:
    """A model of the unpickler's stack and memo over `pickletools.genops`; refuses early.

    Conservative: whatever it does not model exactly (an opcode a state dict
    never uses, a stack underflow, a container changed after it was put in
    another) refuses the file, so the real unpickler only ever sees streams
    that build shallow, bounded trees of the allowed types.
    """

    def __init__(self, path):
        self.path = path
        self.stack, self.marks, self.memo = [], [], {}

    def refuse(self, why):
        raise UnsafeCheckpointError(
            f"{self.path}: refusing to load: the pickle {why} (a state dict of tensors never does)."
        )

    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            self.refuse("pops an empty stack")
        return self.stack.pop()

    def pop_mark(self):
        if not self.marks:
            self.refuse("ends a group it never started (no MARK)")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            self.refuse("uses an empty stack")
        return self.stack[-1]

    def push(self, node):
        if node.depth > MAX_NESTING:
            self.refuse(f"holds objects nested {node.depth} deep, over the limit of {MAX_NESTING}")
        self.stack.append(node)

    def make(self, kind, children):
        if len(children) > MAX_ITEMS:
            self.refuse(f"builds a {kind} of {len(children)} items, over the limit of {MAX_ITEMS}")
        node = _Node(kind)
        self.add(node, children)
        return node

    def add(self, container, children, count=None):
        """Put children (`count` items: a dict's pairs) into a container not yet used elsewhere."""
        if container.used:
            self.refuse(f"changes a {container.kind} after it was used")
        container.items += len(children) if count is None else count
        if container.items > MAX_ITEMS:
            self.refuse(f"fills a {container.kind} with over {MAX_ITEMS} items, over the limit")
        for child in children:
            if child is container:
                self.refuse(f"puts a {container.kind} inside itself")
            child.used = True
            container.depth = max(container.depth, child.depth + 1)
        if container.depth > MAX_NESTING:
            self.refuse(
                f"holds objects nested {container.depth} deep, over the limit of {MAX_NESTING}"
            )

    def set_items(self, target, flat):
        if target.kind not in ("dict", "odict"):
            self.refuse(f"sets items on a {target.kind}")
        if len(flat) % 2:
            self.refuse("sets a key without a value")
        for key in flat[::2]:
            if key.kind not in ("str", "int"):
                self.refuse(f"uses a {key.kind} as a dict key (only names and numbers are keys)")
        self.add(target, flat, len(flat) // 2)

    def name(self, module, name):
        if (module, name) not in _NAMES:
            raise UnsafeCheckpointError(
                f"{self.path}: refusing to load: the pickle asks for {module}.{name}"[:300]
                + ", which a state dict of tensors never needs (a pickle can run code while "
                "it loads; only tensors, OrderedDict and torch's tensor rebuild functions are "
                "accepted)."
            )
        self.push(_Node("global", text=(module, name)))

    def reduce(self):
        args, func = self.pop(), self.pop()
        if func.kind != "global" or args.kind != "tuple":
            self.refuse(f"calls a {func.kind} with a {args.kind}")
        made = _NAMES[func.text]
        if made is None:
            self.refuse(f"calls {'.'.join(func.text)}, which is not a function")
        if made == "odict" and args.items:
            self.refuse("builds an OrderedDict from arguments")
        node = _Node(made)
        self.add(node, [func, args])
        if made == "odict":
            node.depth = 1  # built empty; its items count from here
        self.push(node)

    def op(self, name, arg, pos, data):
        atom = _ATOMS.get(name)
        if atom is not None:
            if atom == "int" and isinstance(arg, int) and abs(arg) > 1 << 128:
                self.refuse("holds an integer of over 128 bits")
            text = arg if atom == "str" and len(arg) <= 200 else None
            self.push(_Node(atom, text=text))
        elif name in ("PROTO", "FRAME"):
            if name == "PROTO" and not 2 <= arg <= 5:
                self.refuse(f"declares pickle protocol {arg}")
            if name == "FRAME" and arg > len(data) - pos:
                self.refuse("declares a frame longer than the file")
        elif name == "MARK":
            if len(self.marks) >= MAX_NESTING:
                self.refuse(f"holds objects nested over {MAX_NESTING} deep, over the limit")
            self.marks.append(len(self.stack))
        elif name in ("EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT"):
            self.push(_Node(name[6:].lower(), depth=1))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self.pop() for _ in range(int(name[-1]))][::-1]
            self.push(self.make("tuple", items))
        elif name == "TUPLE":
            self.push(self.make("tuple", self.pop_mark()))
        elif name == "APPEND" or name == "APPENDS":
            items = [self.pop()] if name == "APPEND" else self.pop_mark()
            target = self.top()
            if target.kind != "list":
                self.refuse(f"appends to a {target.kind}")
            self.add(target, items)
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            self.set_items(self.top(), [key, value])
        elif name == "SETITEMS":
            flat = self.pop_mark()
            self.set_items(self.top(), flat)
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(self.memo) if name == "MEMOIZE" else arg
            if index >= MAX_OPCODES:
                self.refuse(f"stores memo entry {index}, over the limit of {MAX_OPCODES}")
            self.memo[index] = self.top()
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                self.refuse(f"reads memo entry {arg}, which it never stored")
            self.push(self.memo[arg])
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            self.name(module, attr)
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            if module.text is None or attr.text is None:
                self.refuse("names a global by something other than two short names")
            self.name(module.text, attr.text)
        elif name == "REDUCE":
            self.reduce()
        elif name == "BUILD":
            state = self.pop()
            target = self.top()
            if target.kind != "odict" or state.kind != "dict":
                self.refuse(f"sets the state of a {target.kind} from a {state.kind}")
            self.add(target, [state])
        elif name == "BINPERSID":
            pid = self.pop()
            if pid.kind != "tuple":
                self.refuse(f"names a storage by a {pid.kind}")
            node = _Node("storage")
            self.add(node, [pid])
            self.push(node)
        else:
            self.refuse(f"uses the opcode {name}")


def _scan(data, start, path):
    """Check the pickle at data[start:] before it is unpickled; the offset after its STOP."""
    stream = io.BytesIO(data)
    stream.seek(start)
    scan = _Scan(path)
    count = 0
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            count += 1
            if count > MAX_OPCODES:
                scan.refuse(f"has over {MAX_OPCODES} opcodes, over the limit")
            if opcode.name == "STOP":
                if len(scan.stack) != 1 or scan.marks:
                    scan.refuse("ends with other than one object")
                return stream.tell()
            scan.op(opcode.name, arg, pos, data)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # genops: an unknown opcode, an argument cut short
        message = str(err)
        if stream.tell() >= len(data):  # ran out of bytes inside an opcode or before STOP
            message = "truncated before its end"
        raise UnsafeCheckpointError(
            f"{path}: not a PyTorch state dict of tensors ({message[:200]})."
        ) from None
    raise UnsafeCheckpointError(f"{path}: the pickle is truncated (no STOP).")


def _unpickle(data, start, path, persistent_load):
    """Scan, then unpickle, the pickle at data[start:]; returns (object, offset after it)."""
    end = _scan(data, start, path)
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        obj = _RestrictedUnpickler(stream, path, persistent_load).load()
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # a malformed stream the scan let through: say so, never a trace
        raise UnsafeCheckpointError(
            f"{path}: not a PyTorch state dict of tensors ({type(err).__name__}: {str(err)[:200]})."
        ) from None
    if stream.tell() != end:
        raise UnsafeCheckpointError(f"{path}: the pickle ends where its scan did not.")
    return obj, end


def _storage_from_pid(path, storages):
    """The persistent-id handler: ('storage', type, key, location, numel[, view])."""

    def load(pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) not in (5, 6):
            raise UnsafeCheckpointError(
                f"{path}: refusing to load: unexpected persistent id {_short(pid)} "
                "(only tensor storages are accepted; whole pickled modules are not)."
            )
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{path}: a storage has type {_short(storage_type)}.")
        if not isinstance(key, str):
            raise UnsafeCheckpointError(f"{path}: malformed storage entry {_short(pid)}.")
        (numel,) = _ints(numel, "storage size", path)
        view = pid[5] if len(pid) == 6 else None
        root = storages.get(key)
        if root is None:
            root = storages[key] = _Storage(key, storage_type, numel)
        elif root.type is not storage_type or root.numel != numel:
            raise UnsafeCheckpointError(
                f"{path}: storage {_short(key)} is named with two types or sizes."
            )
        if view is None:
            return root
        # torch 0.4's legacy format: (view_key, offset, view_size) of a root storage.
        if not isinstance(view, tuple) or len(view) != 3:
            raise UnsafeCheckpointError(f"{path}: malformed storage view {_short(view)}.")
        _, offset, view_size = view
        offset, view_size = _ints((offset, view_size), "storage view", path)
        if offset + view_size > numel:
            raise UnsafeCheckpointError(
                f"{path}: a view of storage {_short(key)} reaches past its end."
            )
        return _Storage(key, storage_type, view_size, view_offset=offset)

    return load


def _short(value):
    """A bounded repr for messages (the scan bounds the nesting, not the length)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_total(path, storages):
    """All storages within MAX_STORAGE_BYTES (as held: bfloat16 widened); before reading."""
    total = 0
    for storage in storages.values():
        itemsize = 4 if storage.type.name == "BFloat16Storage" else storage.type.dtype.itemsize
        total += storage.numel * itemsize
    if total > MAX_STORAGE_BYTES:
        raise InputError(
            f"{path}: the storages need {total:,} bytes, over the limit of "
            f"{MAX_STORAGE_BYTES:,} (keras_elmo.options.MAX_PARAMETERS float32 weights)."
        )


def _finish_storage(storage, array):
    """Keep the one array of a storage (bfloat16 widened to float32 once, here)."""
    if storage.type.name == "BFloat16Storage":
        # bfloat16 is the top half of a float32.
        wide = array.astype(np.uint32)
        wide <<= 16
        array = wide.view(np.float32)
    array.flags.writeable = False
    storage.array = array


def _materialize(obj, path, storages):
    """The unpickled object -> OrderedDict of name -> read-only numpy view of its storage."""
    if not isinstance(obj, dict):
        raise UnsafeCheckpointError(
            f"{path}: expected a state dict (names -> tensors), got {type(obj).__name__}; "
            "save `module.state_dict()`, not the module."
        )
    out = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _Tensor):
            raise UnsafeCheckpointError(
                f"{path}: state dict entry {_short(name)} is a {type(value).__name__}, "
                "not a tensor."
            )
        out[name] = _view(value, storages[value.storage.key], path, name)
    return out


def _view(tensor, root, path, name):
    """A tensor as a view of its storage's array, or an error if it reaches outside it."""
    if root.array is None:
        raise UnsafeCheckpointError(f"{path}: storage {_short(root.key)} has no data.")
    if len(tensor.size) > MAX_DIMS:
        raise UnsafeCheckpointError(
            f"{path}: tensor {_short(name)} has {len(tensor.size)} dimensions, over {MAX_DIMS}."
        )
    # Python ints throughout: no product or sum can wrap around.
    start = tensor.storage.view_offset + tensor.offset
    count = 1
    for n in tensor.size:
        count *= n
    if count == 0:
        try:
            empty = np.zeros(tensor.size, root.array.dtype)
        except ValueError:  # numpy refuses e.g. (2**62, 2**62, 0): its size overflows
            raise UnsafeCheckpointError(
                f"{path}: tensor {_short(name)} has an impossible shape {_short(tensor.size)}."
            ) from None
        empty.flags.writeable = False  # read-only, as every other tensor
        return empty
    # The furthest element the strides reach must lie inside the storage (or its view).
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= tensor.storage.numel or start + (last - tensor.offset) >= root.array.size:
        raise UnsafeCheckpointError(
            f"{path}: tensor {_short(name)} reaches past the end of its storage."
        )
    if count > root.array.size:
        raise UnsafeCheckpointError(
            f"{path}: tensor {_short(name)} has more elements than its storage."
        )
    itemsize = root.array.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        root.array[start:],
        shape=tensor.size,
        strides=tuple(s * itemsize for s in tensor.stride),
        writeable=False,
    )


def _read_legacy(f, path):
    size = os.fstat(f.fileno()).st_size
    # The five pickles come first, all within MAX_PICKLE_BYTES; the storages follow.
    head = f.read(min(size, MAX_PICKLE_BYTES))
    try:
        return _read_legacy_head(f, path, size, head)
    except UnsafeCheckpointError as err:
        if len(head) == MAX_PICKLE_BYTES and "truncated" in str(err):
            raise InputError(
                f"{path}: its pickles are over the limit of {MAX_PICKLE_BYTES:,} bytes "
                "(torch_pickle.MAX_PICKLE_BYTES), or the file is truncated."
            ) from None
        raise


def _read_legacy_head(f, path, size, head):
    magic, pos = _unpickle(head, 0, path, _no_persistent(path, "magic number"))
    if magic != LEGACY_MAGIC:
        raise InputError(f"{path}: not a PyTorch file (bad magic number).")
    protocol, pos = _unpickle(head, pos, path, _no_persistent(path, "protocol version"))
    if protocol != LEGACY_PROTOCOL:
        raise InputError(f"{path}: unsupported PyTorch legacy protocol {_short(protocol)}.")
    sys_info, pos = _unpickle(head, pos, path, _no_persistent(path, "system info"))
    if not isinstance(sys_info, dict) or sys_info.get("little_endian", False) is not True:
        raise InputError(f"{path}: written on a big-endian machine; not supported.")
    storages = {}
    obj, pos = _unpickle(head, pos, path, _storage_from_pid(path, storages))
    keys, pos = _unpickle(head, pos, path, _no_persistent(path, "storage key list"))
    if (
        not isinstance(keys, list)
        or not all(isinstance(key, str) for key in keys)
        or len(keys) != len(storages)
        or set(keys) != set(storages)
    ):
        raise UnsafeCheckpointError(f"{path}: the storage key list does not match the object.")
    _check_total(path, storages)
    f.seek(pos)
    for key in keys:
        storage = storages[key]
        raw = f.read(8)
        if len(raw) != 8:
            raise InputError(f"{path}: truncated before storage {_short(key)}.")
        (numel,) = struct.unpack("<q", raw)
        nbytes = storage.numel * storage.type.dtype.itemsize
        if numel != storage.numel or nbytes > size - f.tell():
            raise InputError(
                f"{path}: storage {_short(key)} holds {numel} elements, expected "
                f"{storage.numel} (truncated or corrupt file)."
            )
        array = np.empty(storage.numel, dtype=storage.type.dtype)
        if f.readinto(memoryview(array).cast("B")) != nbytes:
            raise InputError(f"{path}: truncated inside storage {_short(key)}.")
        _finish_storage(storage, array)
    return _materialize(obj, path, storages)


def _no_persistent(path, what):
    def load(pid):
        raise UnsafeCheckpointError(f"{path}: unexpected persistent id in the {what}.")

    return load


def _read_member(archive, name, limit, path, what):
    """A zip member's bytes, refused past `limit` by its declared size and while reading."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise InputError(
            f"{path}: {name} declares {info.file_size:,} bytes, over the limit of {limit:,} "
            f"for {what}."
        )
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: {name} holds over {limit:,} bytes, over the limit for {what}.")
    return data


def _read_record(archive, name, array, path):
    """Read a storage record straight into its array (one copy of it, never more)."""
    into = memoryview(array).cast("B")
    done = 0
    with archive.open(name) as member:
        while done < len(into):
            got = member.readinto(into[done : done + _READ_CHUNK])
            if not got:
                break
            done += got
        extra = member.read(1)
    if done != len(into) or extra:
        raise InputError(f"{path}: storage record {name!r} does not hold its declared size.")


def _read_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_archive(archive, path)
    except InputError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # BadZipFile, a bad CRC, zlib and struct errors, odd headers
        raise InputError(
            f"{path}: a zip file that cannot be read as a torch.save archive "
            f"({type(err).__name__}: {str(err)[:200]})."
        ) from None


def _read_archive(archive, path):
    names = set(archive.namelist())
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise InputError(f"{path}: a zip file but not a torch.save archive (no <name>/data.pkl).")
    prefix = pickles[0][: -len("data.pkl")]
    order = "little"
    if prefix + "byteorder" in names:
        raw = _read_member(
            archive, prefix + "byteorder", MAX_BYTEORDER_BYTES, path, "the byteorder record"
        )
        order = raw.decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise InputError(f"{path}: byteorder record {_short(order)} is not little or big.")
    data = _read_member(archive, pickles[0], MAX_PICKLE_BYTES, path, "the pickle")
    storages = {}
    obj, end = _unpickle(data, 0, path, _storage_from_pid(path, storages))
    if end != len(data):
        raise UnsafeCheckpointError(
            f"{path}: {pickles[0]} holds {len(data) - end} bytes after the end of its pickle."
        )
    _check_total(path, storages)
    for key, storage in storages.items():
        record = f"{prefix}data/{key}"
        if record not in names:
            raise InputError(f"{path}: storage record {_short(record)} is missing.")
        expected = storage.numel * storage.type.dtype.itemsize
        size = archive.getinfo(record).file_size
        if size != expected:  # checked before reading: a record may be a zip bomb
            raise InputError(
                f"{path}: storage {_short(key)} has {size} bytes, expected {expected}."
            )
        array = np.empty(storage.numel, dtype=storage.type.dtype)
        _read_record(archive, record, array, path)
        if order == "big":
            array.byteswap(inplace=True)
        _finish_storage(storage, array)
    return _materialize(obj, path, storages)


def load_state_dict(path):
    """A `torch.save`d state dict -> OrderedDict of name -> numpy array (no torch needed).

    The arrays are read-only views of one array per storage: tensors that
    share a storage share memory, as in torch. Raises `UnsafeCheckpointError`
    (an InputError, a ValueError) for anything but a mapping of names to
    tensors, and InputError for files that are not torch saves or are over
    the size limits (see the module docstring).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"PyTorch state dict not found: {path}")
    try:
        f = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err}).") from None
    with f:
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
