"""The torch-free state-dict reader: torch's own numbers in both formats, hostile files refused."""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from support.paths import REPO

from keras_elmo.checkpoints import torch_pickle

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
