"""The torch-free state-dict reader: torch's own numbers in both formats, hostile files refused.

Hostile files are built here (no torch): deep nesting, shared storages,
oversized members, broken zips, views outside storages, and fuzz runs. The
reader must return a state dict or raise an InputError (UnsafeCheckpointError
is one) of one line; never a segfault, RecursionError, MemoryError,
OverflowError or BadZipFile.
"""

import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import REPO

from keras_elmo.checkpoints import torch_pickle
from keras_elmo.errors import InputError

EFML = REPO / "tests" / "fixtures" / "efml"


@pytest.mark.parametrize("model", ["model_legacy", "model_zip"])
def test_fixture_state_dicts_equal_what_torch_read(model):
    # <model>_state.npz was written by torch.load(...).numpy() in generate.py.
    expected = np.load(EFML / f"{model}_state.npz")
    got = {}
    for file in ("token_embedder", "encoder"):
        state = torch_pickle.load_state_dict(EFML / model / f"{file}.pkl")
        assert isinstance(state, collections.OrderedDict)
        got.update({f"{file}/{k}": v for k, v in state.items()})
    assert sorted(got) == sorted(expected.files)
    for name in expected.files:
        assert got[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_the_two_formats_are_the_ones_claimed():
    with open(EFML / "model_zip" / "encoder.pkl", "rb") as f:
        assert f.read(4) == b"PK\x03\x04"
    with open(EFML / "model_legacy" / "encoder.pkl", "rb") as f:
        # The legacy format starts with the pickled magic number.
        assert pickle.load(f) == torch_pickle.LEGACY_MAGIC


@pytest.mark.parametrize("file", ["tensors_legacy.pkl", "tensors_zip.pkl"])
def test_views_strides_and_dtypes(file):
    expected = np.load(EFML / "tensors_expected.npz")
    got = torch_pickle.load_state_dict(EFML / file)
    assert sorted(got) == sorted(expected.files)
    for name in expected.files:
        assert got[name].shape == expected[name].shape, name
        assert got[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


# ---------------------------------------------------------------- hostile files
class _Evil:
    """Pickles as a call to os.system, the classic pickle exploit."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy_file(path, obj_bytes, keys=()):
    with open(path, "wb") as f:
        for value in (
            torch_pickle.LEGACY_MAGIC,
            torch_pickle.LEGACY_PROTOCOL,
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {}},
        ):
            pickle.dump(value, f, protocol=2)
        f.write(obj_bytes)
        pickle.dump(list(keys), f, protocol=2)


def _zip_file(path, obj_bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", obj_bytes)
        archive.writestr("archive/byteorder", "little")


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_a_pickle_that_would_run_os_system_is_refused(tmp_path, fmt):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(collections.OrderedDict(w=_Evil(marker)), protocol=2)
    path = tmp_path / "evil.pkl"
    (_legacy_file if fmt == "legacy" else _zip_file)(path, payload)
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match=r"refusing.*system"):
        torch_pickle.load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, message",
    [
        (collections.OrderedDict(w=[1.0, 2.0]), r"entry 'w' is a list, not a tensor"),
        (collections.OrderedDict(w=3), r"entry 'w' is a int, not a tensor"),
        ([1, 2], r"expected a state dict .* got list"),
        ({1: 2}, r"entry 1 is a int"),
    ],
)
def test_anything_but_tensors_in_a_state_dict_is_refused(tmp_path, obj, message):
    path = tmp_path / "state.pkl"
    _legacy_file(path, pickle.dumps(obj, protocol=2))
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match=message):
        torch_pickle.load_state_dict(path)


def test_other_classes_are_refused_by_name(tmp_path):
    path = tmp_path / "state.pkl"
    _zip_file(path, pickle.dumps({"w": {1, 2}}, protocol=2))  # a set: builtins.set
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match=r"(__builtin__|builtins)\.set"):
        torch_pickle.load_state_dict(path)


def _persistent_pickle(pid):
    buffer = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return pid if obj == "STORAGE" else None

    Pickler(buffer, protocol=2).dump({"w": "STORAGE"})
    return buffer.getvalue()


def test_a_pickled_module_is_refused(tmp_path):
    # torch.save(module) writes ('module', class, source file, source) ids.
    path = tmp_path / "module.pkl"
    _legacy_file(path, _persistent_pickle(("module", "Net", "net.py", "class Net: ...")))
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="persistent id"):
        torch_pickle.load_state_dict(path)


def test_truncated_and_foreign_files(tmp_path):
    good = (EFML / "model_legacy" / "encoder.pkl").read_bytes()
    short = tmp_path / "short.pkl"
    short.write_bytes(good[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        torch_pickle.load_state_dict(short)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps(12345, protocol=2) + b"\0" * 64)
    with pytest.raises(ValueError, match="bad magic number"):
        torch_pickle.load_state_dict(other)
    zipped = tmp_path / "plain.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a torch.save archive"):
        torch_pickle.load_state_dict(zipped)
    with pytest.raises(FileNotFoundError):
        torch_pickle.load_state_dict(tmp_path / "missing.pkl")


def _text(value):
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def _one_tensor_file(path, pid, tensor_args, storage_key, storage):
    """A legacy file of {"w": _rebuild_tensor_v2(<pid>, <tensor_args>)}, hand-written
    opcodes (no torch here), and the float32 `storage` under `storage_key`."""
    payload = (
        b"\x80\x02}"
        + _text("w")
        + _global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + pid
        + tensor_args
    )
    _legacy_file(path, payload, keys=[storage_key])
    with open(path, "ab") as f:
        f.write(struct.pack("<q", len(storage)) + np.float32(storage).tobytes())


def test_a_tensor_past_its_storage_is_refused(tmp_path):
    # {"w": _rebuild_tensor_v2(storage, 0, (10,), (1,))} where the storage
    # holds only 2 floats.
    pid = (
        (b"(" + _text("storage") + _global("torch", "FloatStorage") + _text("0") + _text("cpu"))
        + b"K\x02Nt"
        + b"Q"
    )  # MARK ... BININT1 2, NONE, TUPLE, BINPERSID
    path = tmp_path / "past.pkl"
    _one_tensor_file(path, pid, b"K\x00K\x0a\x85K\x01\x85tRs.", "0", [1, 2])
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="past the end"):
        torch_pickle.load_state_dict(path)
    # The same file with a 2-element tensor reads fine: the opcodes are right.
    path.write_bytes(path.read_bytes().replace(b"K\x0a\x85", b"K\x02\x85"))
    np.testing.assert_array_equal(torch_pickle.load_state_dict(path)["w"], [1.0, 2.0])


def test_a_2018_gpu_save_with_a_storage_view(tmp_path):
    # torch 0.4 (the published models' era) wrote 6-field storage ids whose
    # last field may be a view (root key, offset, size) of a root storage,
    # and a model trained on a GPU names torch.cuda's storage types.
    view = b"(" + _text("140") + b"K\x02K\x03t"  # ("140", 2, 3)
    pid = (
        b"("
        + _text("storage")
        + _global("torch.cuda", "FloatStorage")
        + _text("140")
        + _text("cuda:0")
        + b"K\x06"
        + view
        + b"tQ"
    )
    path = tmp_path / "gpu.pkl"
    # offset 0, size (3,), stride (1,), False, {}
    _one_tensor_file(path, pid, b"K\x00K\x03\x85K\x01\x85\x89}tRs.", "140", [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(torch_pickle.load_state_dict(path)["w"], [2.0, 3.0, 4.0])


# ------------------------------------------------- hostile files, bounded work
def _int(value):
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)  # BININT
    data = pickle.encode_long(value)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _ints_tuple(values):
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def _storage_pid(key, numel, storage="FloatStorage"):
    # ('storage', torch.FloatStorage, key, 'cpu', numel), BINPERSID
    return (
        b"("
        + _text("storage")
        + _global("torch", storage)
        + _text(key)
        + _text("cpu")
        + _int(numel)
        + b"tQ"
    )


def _tensor(key, numel, offset, size, stride):
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return (
        _global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + _storage_pid(key, numel)
        + _int(offset)
        + _ints_tuple(size)
        + _ints_tuple(stride)
        + b"\x89"
        + _global("collections", "OrderedDict")
        + b")R"
        + b"tR"
    )


def _state_pickle(entries):
    """{name: tensor bytes} as a protocol-2 pickle of a dict."""
    body = b"".join(_text(name) + tensor for name, tensor in entries.items())
    return b"\x80\x02}(" + body + b"u."


def _zip(path, data_pkl, records=(), byteorder=b"little", compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", byteorder)
        for key, data in records:
            archive.writestr(f"archive/data/{key}", data)
    return path


def _nested_key_pickle(levels):
    # {((((),),),...): 1}: a dict key nested `levels` tuples deep (one byte a level).
    return b"\x80\x02}" + b")" + b"\x85" * levels + b"K\x01s."


LOAD_ONE = (
    "import sys\n"
    "from keras_elmo.checkpoints import torch_pickle\n"
    "from keras_elmo.errors import InputError\n"
    "try:\n"
    "    torch_pickle.load_state_dict(sys.argv[1])\n"
    "except InputError as err:\n"
    "    print('InputError:', err)\n"
    "    sys.exit(3)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_a_key_nested_a_million_levels_is_refused_without_a_crash(tmp_path, fmt):
    # 1 MB of pickle; on main the interpreter died inside the unpickler (-11).
    data = _nested_key_pickle(1_000_000)
    path = tmp_path / "deep.pkl"
    if fmt == "zip":
        _zip(path, data)
    else:
        _legacy_file(path, data)
    run = subprocess.run(
        [sys.executable, "-c", LOAD_ONE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 3, (run.returncode, run.stderr[-2000:])
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "nested" in lines[0], run.stdout[:2000]


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_a_key_nested_100000_levels_is_refused_in_one_line(tmp_path, fmt):
    # On main: a RecursionError traceback.
    data = _nested_key_pickle(100_000)
    path = tmp_path / "deep.pkl"
    _zip(path, data) if fmt == "zip" else _legacy_file(path, data)
    with pytest.raises(
        torch_pickle.UnsafeCheckpointError, match=r"nested .* over the limit of 100"
    ) as err:
        torch_pickle.load_state_dict(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_nesting_within_the_limit_still_reaches_the_type_checks(tmp_path):
    # {"w": ((((),),),...)}: 50 levels pass the scan and are refused as not a
    # tensor; 150 levels are refused by the scan.
    def deep(levels):
        return b"\x80\x02}" + _text("w") + b")" + b"\x85" * levels + b"s."

    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="'w' is a tuple, not a tensor"):
        torch_pickle.load_state_dict(_zip(tmp_path / "50.pkl", deep(50)))
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="nested 101 deep"):
        torch_pickle.load_state_dict(_zip(tmp_path / "150.pkl", deep(150)))


def test_tensors_sharing_one_storage_cost_one_storage(tmp_path):
    n, k = 1 << 18, 40  # a 1 MiB storage, 40 tensors over the whole of it
    storage = np.arange(n, dtype="<f4")
    entries = {f"w{i}": _tensor("0", n, 0, (n,), (1,)) for i in range(k)}
    entries["half"] = _tensor("0", n, n // 2, (2, n // 4), (n // 4, 1))
    path = _zip(tmp_path / "shared.pkl", _state_pickle(entries), [("0", storage.tobytes())])
    tracemalloc.start()
    try:
        state = torch_pickle.load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # On main: 40 copies and the storage three times (over 40 MiB).
    assert peak < 3 * storage.nbytes, peak
    for i in range(k):
        np.testing.assert_array_equal(state[f"w{i}"], storage)
        assert np.shares_memory(state[f"w{i}"], state["w0"])
    np.testing.assert_array_equal(state["half"], storage[n // 2 :].reshape(2, n // 4))
    assert np.shares_memory(state["half"], state["w0"])
    assert not state["w0"].flags.writeable


def test_big_endian_and_bfloat16_storages_are_converted_once(tmp_path):
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    bf16 = (np.array([1.5, -2.0, 3.25], "<f4").view("<u4") >> 16).astype(">u2")
    entries = {
        "a": _tensor("0", 3, 0, (3,), (1,)),
        "b": _tensor("0", 3, 1, (2,), (1,)),
        "c": _global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + _storage_pid("1", 3, "BFloat16Storage")
        + _int(0)
        + _ints_tuple((3,))
        + _ints_tuple((1,))
        + b"tR",
    }
    path = _zip(
        tmp_path / "be.pkl",
        _state_pickle(entries),
        [("0", values.tobytes()), ("1", bf16.tobytes())],
        byteorder=b"big",
    )
    state = torch_pickle.load_state_dict(path)
    np.testing.assert_array_equal(state["a"], [1.5, -2.0, 3.25])
    np.testing.assert_array_equal(state["b"], [-2.0, 3.25])
    assert state["a"].dtype == np.float32 and np.shares_memory(state["a"], state["b"])
    np.testing.assert_array_equal(state["c"], [1.5, -2.0, 3.25])
    assert state["c"].dtype == np.float32


@pytest.mark.parametrize("member", ["data.pkl", "byteorder"])
def test_an_oversized_member_is_refused_by_its_declared_size(tmp_path, member):
    # 64 MiB of zeros deflate to about 64 KB; main read them all into memory.
    big = bytes(64 << 20)
    pkl = big if member == "data.pkl" else _state_pickle({})
    order = big if member == "byteorder" else b"little"
    path = _zip(tmp_path / "big.pkl", pkl, byteorder=order, compress=zipfile.ZIP_DEFLATED)
    del big
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=rf"{member} .*over the limit"):
            torch_pickle.load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_storages_over_the_model_size_limit_are_refused_before_reading(tmp_path):
    # Two storages declaring 2**30 floats each (8 GiB): refused before any record is read.
    entries = {
        "a": _tensor("0", 1 << 30, 0, (1,), (1,)),
        "b": _tensor("1", 1 << 30, 0, (1,), (1,)),
    }
    path = _zip(tmp_path / "huge.pkl", _state_pickle(entries))
    with pytest.raises(InputError, match="storages .* over the limit"):
        torch_pickle.load_state_dict(path)


def _fixture_zip_bytes():
    return (EFML / "model_zip" / "encoder.pkl").read_bytes()


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_a_truncated_zip_is_an_input_error(tmp_path, cut):
    data = _fixture_zip_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="cut.pkl"):  # on main: zipfile.BadZipFile
        torch_pickle.load_state_dict(path)


def test_a_corrupt_storage_record_is_an_input_error(tmp_path):
    # A flipped byte in a storage record: the CRC check fails while reading.
    data = bytearray(_fixture_zip_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("encoder/data/0")
    # The data follow the local header (30 bytes, the name, its own extra field).
    local_extra = struct.unpack("<H", data[info.header_offset + 28 : info.header_offset + 30])[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + local_extra
    data[start] ^= 0xFF
    path = tmp_path / "crc.pkl"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="crc.pkl"):  # on main: zipfile.BadZipFile
        torch_pickle.load_state_dict(path)


@pytest.mark.parametrize(
    "offset, size, stride, message",
    [
        (0, (5,), (1,), "past the end"),  # 5 elements of a 4-element storage
        (4, (1,), (1,), "past the end"),  # offset at the end
        (0, (2, 2), (3, 1), "past the end"),  # the last row reaches element 4
        (1 << 40, (1,), (1,), "past the end"),  # offset far outside
        (0, (1 << 32, 1 << 32), (0, 0), "more elements"),  # 2**64 elements (wrapped to 0)
        (0, (2,), (1 << 62,), "past the end"),  # a stride far outside
        (0, (1,) * 70, (1,) * 70, "dimensions"),  # more dimensions than numpy has
        (0, (1 << 62, 1 << 62, 0), (1, 1, 1), "impossible shape"),  # empty, yet too big
    ],
)
def test_a_view_outside_its_storage_is_refused(tmp_path, offset, size, stride, message):
    storage = np.arange(4, dtype="<f4")
    path = _zip(
        tmp_path / "view.pkl",
        _state_pickle({"w": _tensor("0", 4, offset, size, stride)}),
        [("0", storage.tobytes())],
    )
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match=message):
        torch_pickle.load_state_dict(path)


def test_a_view_inside_its_storage_is_read(tmp_path):
    storage = np.arange(6, dtype="<f4")
    path = _zip(
        tmp_path / "view.pkl",
        _state_pickle(
            {"t": _tensor("0", 6, 1, (2, 2), (1, 2)), "e": _tensor("0", 6, 6, (0, 3), (3, 1))}
        ),
        [("0", storage.tobytes())],
    )
    state = torch_pickle.load_state_dict(path)
    np.testing.assert_array_equal(state["t"], [[1.0, 3.0], [2.0, 4.0]])
    assert state["e"].shape == (0, 3) and not state["e"].flags.writeable


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x80\x02}r\xff\xff\xff\xff.", "memo"),  # LONG_BINPUT 2**32-1: a 64 GB memo
        (b"\x80\x02(" * 200 + b".", "nested"),  # 200 open MARKs
        (b"\x80\x02}" + b"(" + b"K\x01" * 200_001 + b"t" + b"K\x01s.", "items"),
        (b"\x80\x02" + _global("builtins", "eval") + _text("1") + b"\x85R.", "builtins.eval"),
        (b"\x80\x02" + _text("os") + _text("system") + b"\x93.", "os.system"),  # STACK_GLOBAL
        (b"\x80\x02" + _global("collections", "OrderedDict") + b"]\x85R.", "OrderedDict"),
        (b"\x80\x02" + _global("torch", "FloatStorage") + b")R.", "torch.FloatStorage"),
        (b"\x80\x02}" + b"]" + b"K\x01s.", "key"),  # a list as a dict key
        (b"\x80\x02}C\x01x" + b"K\x01s.", "SHORT_BINBYTES"),
        (b"\x80\x02]q\x00h\x00a.", "inside itself"),  # a list appended to itself
        (b"\x80\x02\x8a\xff" + b"\x7f" * 255 + b".", "integer"),  # a 2040-bit LONG1
        (b"\x80\x02}", "truncated"),  # no STOP
        (b"\x80\x02}.K\x01", "after the end"),  # bytes after STOP in data.pkl
    ],
)
def test_opcode_streams_a_state_dict_never_needs_are_refused(tmp_path, payload, message):
    path = _zip(tmp_path / "ops.pkl", payload)
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match=message) as err:
        torch_pickle.load_state_dict(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 500


def test_a_pickled_ordered_dict_with_metadata_still_loads(tmp_path):
    # torch's state_dict(): OrderedDict() + SETITEMS + BUILD {'_metadata': OrderedDict}
    # (the fixtures cover it too; here written by Python's own pickler).
    state = collections.OrderedDict()
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    path = _zip(tmp_path / "meta.pkl", pickle.dumps(state, protocol=2))
    assert torch_pickle.load_state_dict(path) == collections.OrderedDict()


# ------------------------------------------------------------------- fuzzing
# Each run: the reader returns a state dict of arrays or raises an InputError,
# never anything else (a crash fails the whole run), within a memory bound.
# The counts printed here are the ones in docs/reliability.md.

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)
FUZZ_MEMORY = 64 << 20  # peak traced bytes over a whole run; the inputs are a few KB


def _outcome(path):
    try:
        state = torch_pickle.load_state_dict(path)
    except InputError as err:
        assert "\n" not in str(err) and len(str(err)) < 1000, str(err)[:2000]
        return "refused"
    assert isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values())
    return "loaded"


def _mutate(data, edits):
    data = bytearray(data)
    for where, byte, how in edits:
        where %= max(len(data), 1)
        if how == "set" and data:
            data[where] = byte
        elif how == "insert":
            data.insert(where, byte)
        elif data:
            del data[where]
    return bytes(data)


EDITS = st.lists(
    st.tuples(
        st.integers(0, 1 << 20), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])
    ),
    min_size=1,
    max_size=8,
)

# Opcodes with arguments, the allowed torch names and a few forbidden ones.
SNIPPETS = [
    b"(", b"t", b")", b"\x85", b"\x86", b"\x87", b"}", b"]", b"s", b"u", b"a", b"e", b"0",
    b"1", b"2", b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"r\x00\x00\x00\x00", b"\x94",
    b"j\x00\x00\x00\x00", b"K\x00", b"K\x03", b"J\xff\xff\xff\xff", b"\x8a\x01\x01", b"N",
    b"\x88", b"\x89", b"R", b"b", b"Q", b"\x93", b"C\x01x", b"\x8c\x01w", b"G" + bytes(8),
    b"\x95" + bytes(8), b"\xff", _text("storage"), _text("0"), _text("cpu"), _text("w"),
    _global("torch", "FloatStorage"), _global("torch._utils", "_rebuild_tensor_v2"),
    _global("collections", "OrderedDict"), _global("os", "system"), _storage_pid("0", 12),
    _tensor("0", 12, 0, (3, 4), (4, 1)),
]  # fmt: skip


def _fuzz_run(run, outcomes):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{sum(outcomes.values())} examples, {dict(outcomes)}, "
          f"{time.perf_counter() - started:.1f} s, peak {peak / 2**20:.1f} MiB")  # fmt: skip
    assert peak < FUZZ_MEMORY, peak
    return outcomes


def test_fuzz_mutated_zip_pickles(tmp_path):
    with zipfile.ZipFile(EFML / "tensors_zip.pkl") as archive:
        records = [
            (n.rsplit("/", 1)[1], archive.read(n)) for n in archive.namelist() if "/data/" in n
        ]
        data = archive.read("tensors_zip/data.pkl")
    outcomes = collections.Counter()

    @FUZZ
    @given(EDITS)
    def run(edits):
        path = _zip(tmp_path / "m.pkl", _mutate(data, edits), records)
        outcomes[_outcome(path)] += 1

    _fuzz_run(run, outcomes)
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0  # both sides were reached


def test_fuzz_mutated_legacy_files(tmp_path):
    data = (EFML / "tensors_legacy.pkl").read_bytes()
    outcomes = collections.Counter()

    @FUZZ
    @given(EDITS)
    def run(edits):
        path = tmp_path / "m.pkl"
        path.write_bytes(_mutate(data, edits))
        outcomes[_outcome(path)] += 1

    _fuzz_run(run, outcomes)
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0


def test_fuzz_random_opcode_streams(tmp_path):
    storage = np.arange(12, dtype="<f4").tobytes()
    outcomes = collections.Counter()

    @FUZZ
    @given(st.lists(st.sampled_from(SNIPPETS), max_size=60), st.booleans())
    def run(snippets, as_state):
        body = b"".join(snippets)
        payload = b"\x80\x02" + (b"}(" + _text("w") + body + b"u" if as_state else body) + b"."
        path = _zip(tmp_path / "r.pkl", payload, [("0", storage)])
        outcomes[_outcome(path)] += 1

    _fuzz_run(run, outcomes)
    assert outcomes["refused"] > 0


def test_the_opcode_count_is_bounded(tmp_path, monkeypatch):
    # A flat dict of 600 ints: 1,200 opcodes and more; over a bound of 1,000.
    path = _zip(tmp_path / "ops.pkl", pickle.dumps({f"k{i}": i for i in range(600)}, protocol=2))
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="'k0' is a int"):
        torch_pickle.load_state_dict(path)  # within the real bound: reaches the type check
    monkeypatch.setattr(torch_pickle, "MAX_OPCODES", 1000)
    with pytest.raises(torch_pickle.UnsafeCheckpointError, match="over 1000 opcodes"):
        torch_pickle.load_state_dict(path)


def test_legacy_pickles_past_the_byte_bound_are_named(tmp_path, monkeypatch):
    path = EFML / "tensors_legacy.pkl"
    assert torch_pickle.load_state_dict(path)  # whole under the real bound
    monkeypatch.setattr(torch_pickle, "MAX_PICKLE_BYTES", 200)
    with pytest.raises(InputError, match="pickles are over the limit of 200 bytes"):
        torch_pickle.load_state_dict(path)
