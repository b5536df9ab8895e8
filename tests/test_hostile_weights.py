"""Weights files that try to read other files, inflate, or hold more than the options say.

Every hostile file is built here from the bilm-tf fixture, the shipped model
or a tiny random model. Each must be refused with one `InputError` line naming
the file and the dataset (or option), through `ElmoLayer.from_original`, and
before any layer is built where the check is on metadata.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.paths import REPO
from support.tiny_model import TINY_OPTIONS, random_tiny_layer

from keras_elmo import options as options_lib
from keras_elmo.checkpoints import original
from keras_elmo.errors import InputError
from keras_elmo.layers.elmo_layer import ElmoLayer

W0 = "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"
B_CARRY = "CNN_high_1/b_carry"
SHIPPED = REPO / "saved_models" / "elmo-small-en"
# Bytes standing in for a private file: as float32 they are finite numbers.
SECRET = b"user:password\n" * 4096


@pytest.fixture
def no_build(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("ElmoLayer.build ran: the check came after allocation")

    monkeypatch.setattr(ElmoLayer, "build", refuse)


@pytest.fixture
def weights(fixture_dir, tmp_path):
    path = tmp_path / "weights.hdf5"
    shutil.copy(fixture_dir / "lm_weights.hdf5", path)
    return path


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    return path


def refusal(options_file, weight_file):
    with pytest.raises(InputError) as info:
        ElmoLayer.from_original(str(options_file), str(weight_file))
    message = str(info.value)
    assert "\n" not in message
    assert str(weight_file) in message
    return message


def move_to_other_file(weight_file, name, other):
    """Delete dataset `name` from the weights file, keeping it in `other` at '/data'."""
    with h5py.File(weight_file, "r+") as f:
        data = f[name][...]
        del f[name]
    with h5py.File(other, "w") as g:
        g["data"] = data
    return data


# --------------------------------------------------------- links to elsewhere


def test_an_external_link_to_a_dataset_is_refused(fixture_dir, weights, tmp_path, no_build):
    other = tmp_path / "other.h5"
    move_to_other_file(weights, B_CARRY, other)
    with h5py.File(weights, "r+") as f:
        f[B_CARRY] = h5py.ExternalLink(str(other), "/data")
    message = refusal(fixture_dir / "options.json", weights)
    assert f"dataset {B_CARRY!r} is reached through an external link (to {other}:/data)" in message


def test_an_external_link_to_a_group_is_refused(fixture_dir, weights, tmp_path, no_build):
    # The whole CNN group in another file: every dataset under it is read from there.
    other = tmp_path / "other.h5"
    with h5py.File(weights, "r+") as f, h5py.File(other, "w") as g:
        f.copy("CNN", g)
        del f["CNN"]
        f["CNN"] = h5py.ExternalLink(str(other), "/CNN")
    message = refusal(fixture_dir / "options.json", weights)
    assert "dataset 'CNN/W_cnn_0' is reached through an external link" in message
    assert "at 'CNN'" in message


def test_a_soft_link_is_refused(fixture_dir, weights, no_build):
    with h5py.File(weights, "r+") as f:
        f.move(B_CARRY, "stash")
        f[B_CARRY] = h5py.SoftLink("/stash")
    message = refusal(fixture_dir / "options.json", weights)
    assert f"dataset {B_CARRY!r} is reached through a soft link (to /stash)" in message


# -------------------------------------------------- storage outside the file


def test_external_raw_storage_is_refused(fixture_dir, weights, secret, no_build):
    with h5py.File(weights, "r+") as f:
        shape = f[B_CARRY].shape
        del f[B_CARRY]
        f.create_dataset(B_CARRY, shape, "f4", external=[(str(secret), 0, 4 * shape[0])])
        # What was read before: the secret's bytes as finite float32 numbers.
        assert np.isfinite(f[B_CARRY][...]).all()
    message = refusal(fixture_dir / "options.json", weights)
    assert f"dataset {B_CARRY!r} keeps its values in an external file" in message
    assert str(secret) in message


def test_a_virtual_dataset_is_refused(fixture_dir, weights, tmp_path, no_build):
    other = tmp_path / "other.h5"
    data = move_to_other_file(weights, B_CARRY, other)
    layout = h5py.VirtualLayout(shape=data.shape, dtype="f4")
    layout[...] = h5py.VirtualSource(str(other), "data", shape=data.shape)
    with h5py.File(weights, "r+") as f:
        f.create_virtual_dataset(B_CARRY, layout)
    message = refusal(fixture_dir / "options.json", weights)
    assert f"dataset {B_CARRY!r} is a virtual dataset" in message


def test_a_chunk_larger_than_its_dataset_is_refused(fixture_dir, weights, no_build):
    # A gzip chunk of 64 MB of zeros is 64 KB on disk; read, it costs the 64 MB.
    with h5py.File(weights, "r+") as f:
        data = f[W0][...]
        del f[W0]
        f.create_dataset(
            W0, data=data, maxshape=(None, None), chunks=(4096, 4096), compression="gzip"
        )
    message = refusal(fixture_dir / "options.json", weights)
    assert f"dataset {W0!r} has chunks of shape (4096, 4096), larger than the dataset" in message


def test_ordinary_layouts_load_the_same_numbers(fixture_dir, weights):
    # Chunked (gzip, chunks within the dataset) and compact datasets are ordinary.
    with h5py.File(weights, "r+") as f:
        w0, b = f[W0][...], f[B_CARRY][...]
        del f[W0], f[B_CARRY]
        f.create_dataset(W0, data=w0, chunks=(8, 16), compression="gzip", shuffle=True)
        f.create_dataset(B_CARRY, data=b, compression=None, track_times=False)
    layer = ElmoLayer.from_original(str(fixture_dir / "options.json"), str(weights))
    reference = ElmoLayer.from_original(
        str(fixture_dir / "options.json"), str(fixture_dir / "lm_weights.hdf5")
    )
    for got, want in zip(layer.weights, reference.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


# ------------------------------------------------ the file holds more than that


def test_an_extra_dataset_is_refused(fixture_dir, weights, no_build):
    with h5py.File(weights, "r+") as f:
        f["CNN/W_cnn_9"] = np.zeros((1, 9, 4, 2), "f4")
        f["notes/readme"] = np.zeros(3, "f4")
    message = refusal(fixture_dir / "options.json", weights)
    assert "holds 2 datasets the options do not describe: 'CNN/W_cnn_9', 'notes/readme'" in message


def test_an_extra_dataset_is_refused_by_the_loader_itself(fixture_dir, weights, tmp_path):
    # load_original_weights checks too (it does not rely on check_weights_file).
    layer = ElmoLayer(options_lib.load_options(fixture_dir / "options.json"))
    layer.build()
    with h5py.File(weights, "r+") as f:
        f["extra"] = np.zeros(3, "f4")
    with pytest.raises(InputError, match="holds 1 dataset the options do not describe: 'extra';"):
        original.load_original_weights(str(weights), layer.token_encoder, layer.bilm)


@pytest.mark.parametrize(
    "section, key, value, count, first",
    [
        # Layer 1's W_0, B and W_P_0 in both directions; highway 0's four.
        ("lstm", "n_layers", 1, 6, "'RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/B', "),
        ("char_cnn", "n_highway", 0, 4, "'CNN_high_0/W_carry', 'CNN_high_0/W_transform', "),
    ],
)
def test_options_that_explain_less_than_the_shipped_weights(
    tmp_path, no_build, section, key, value, count, first
):
    # The case: loaded silently, vectors off by up to 1.2.
    options = json.loads((SHIPPED / "options.json").read_text())
    options[section][key] = value
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(options))
    message = refusal(options_file, SHIPPED / "weights.hdf5")
    assert f"holds {count} datasets the options do not describe: {first}" in message


@pytest.mark.parametrize("group", ["/", "CNN", "notes"])
def test_a_name_that_is_not_utf8_is_refused(fixture_dir, weights, no_build, group):
    # h5py raised UnicodeDecodeError while looking up any name of that group.
    with h5py.File(weights, "r+") as f:
        space = h5py.h5s.create_simple((2,))
        h5py.h5d.create(f.require_group(group).id, b"bad\xff\xfe", h5py.h5t.IEEE_F32LE, space)
    message = refusal(fixture_dir / "options.json", weights)
    assert "holds an entry whose name is not UTF-8" in message
    assert repr("/" + group.strip("/")) in message


def test_hard_link_cycles_end_and_aliases_of_groups_are_harmless(fixture_dir, weights):
    # A group linked into itself and the root linked below it: walked once.
    with h5py.File(weights, "r+") as f:
        f["CNN/again"] = f["CNN"]
        f["CNN/up"] = f["/"]
    layer = ElmoLayer.from_original(str(fixture_dir / "options.json"), str(weights))
    with h5py.File(fixture_dir / "lm_weights.hdf5", "r") as f:
        np.testing.assert_array_equal(layer.token_encoder.conv_kernels[0].numpy(), f["CNN/W_cnn_0"])


def test_a_file_with_too_many_entries_is_refused(fixture_dir, weights, monkeypatch):
    with h5py.File(weights, "r") as f:
        links = []
        f.visit(links.append)  # every group and dataset, each one link here
    monkeypatch.setattr(original, "MAX_FILE_ENTRIES", len(links))
    original.check_weights_file(weights, options_lib.load_options(fixture_dir / "options.json"))
    with h5py.File(weights, "r+") as f:
        f.create_group("one_more")
    message = refusal(fixture_dir / "options.json", weights)
    assert f"holds over {len(links)} entries; not a weights file" in message


def test_the_real_files_hold_exactly_what_their_options_say(fixture_dir):
    # bilm-tf's dump_weights writes the trainable variables minus the softmax,
    # which is what expected_datasets lists: nothing more in either file.
    for options_file, weight_file in (
        (SHIPPED / "options.json", SHIPPED / "weights.hdf5"),
        (fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5"),
    ):
        options = options_lib.load_options(options_file)
        with h5py.File(weight_file, "r") as f:
            names = original._file_entries(f, weight_file)
        assert sorted(names) == sorted(original.expected_datasets(options))
        original.check_weights_file(weight_file, options)


# --------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_export_refuses_external_storage_and_ships_nothing(fixture_dir, weights, secret, tmp_path):
    # On main this export wrote the secret's bytes into variables.data.
    with h5py.File(weights, "r+") as f:
        del f[B_CARRY]
        f.create_dataset(B_CARRY, (124,), "f4", external=[(str(secret), 0, 4 * 124)])
    out = tmp_path / "export"
    proc = subprocess.run(
        [sys.executable, "-m", "keras_elmo", "export", str(out)]
        + ["--options-file", str(fixture_dir / "options.json"), "--weight-file", str(weights)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(weights) in lines[0] and repr(B_CARRY) in lines[0]
    assert "keeps its values in an external file" in lines[0]
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# --------------------------------------------------- random layouts (property)

ORDINARY = ("plain", "compact", "chunked", "gzip")
HOSTILE = ("big_chunk", "external", "virtual", "xlink", "soft")
KINDS = ORDINARY + HOSTILE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(the tiny model's file, {dataset: values}, a built target layer, the source layer)."""
    root = tmp_path_factory.mktemp("tiny")
    source = random_tiny_layer(seed=5)
    base = root / "base.hdf5"
    original.save_original_weights(str(base), source.token_encoder, source.bilm)
    with h5py.File(base, "r") as f:
        values = {name: f[name][...] for name in original.expected_datasets(TINY_OPTIONS)}
    target = ElmoLayer(TINY_OPTIONS)
    target.build()
    return Tiny(root, values, target, source)


class Tiny(tuple):
    def __new__(cls, *parts):
        return super().__new__(cls, parts)

    def __repr__(self):
        return "tiny"


def write_layout(path, values, kinds, extra, other):
    with h5py.File(other, "w") as g:
        for name, data in values.items():
            g[name] = data
    with h5py.File(path, "w") as f:
        for name, data in values.items():
            kind = kinds.get(name, "plain")
            if kind == "plain":
                f[name] = data
            elif kind == "compact":
                # h5py's create_dataset has no compact flag: the low-level API.
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_layout(h5py.h5d.COMPACT)
                group = f.require_group(name.rsplit("/", 1)[0]) if "/" in name else f
                space = h5py.h5s.create_simple(data.shape)
                dsid = h5py.h5d.create(
                    group.id,
                    name.rsplit("/", 1)[-1].encode(),
                    h5py.h5t.IEEE_F32LE,
                    space,
                    dcpl=dcpl,
                )
                dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data, "f4"))
            elif kind in ("chunked", "gzip"):
                chunks = tuple(max(1, s // 2) for s in data.shape)
                f.create_dataset(
                    name, data=data, chunks=chunks, compression="gzip" if kind == "gzip" else None
                )
            elif kind == "big_chunk":
                chunks = tuple(s + 1 for s in data.shape)
                f.create_dataset(name, data=data, chunks=chunks, maxshape=(None,) * data.ndim)
            elif kind == "external":
                raw = pathlib.Path(str(path) + "." + name.replace("/", "_") + ".raw")
                raw.write_bytes(np.ascontiguousarray(data, "<f4").tobytes())
                f.create_dataset(name, data.shape, "<f4", external=[(str(raw), 0, data.nbytes)])
            elif kind == "virtual":
                layout = h5py.VirtualLayout(shape=data.shape, dtype="f4")
                layout[...] = h5py.VirtualSource(str(other), name, shape=data.shape)
                f.create_virtual_dataset(name, layout)
            elif kind == "xlink":
                f[name] = h5py.ExternalLink(str(other), "/" + name)
            elif kind == "soft":
                f["stash/" + name] = data
                f[name] = h5py.SoftLink("/stash/" + name)
        if extra:
            f[extra] = np.zeros(2, "f4")


@settings(
    # KERAS_ELMO_HDF5_FUZZ_EXAMPLES: a longer run (docs/reliability.md#fuzzing).
    max_examples=int(os.environ.get("KERAS_ELMO_HDF5_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_layouts_load_exactly_or_are_refused(tiny, data):
    root, values, target, source = tiny
    names = sorted(values)
    ordinary = data.draw(
        st.dictionaries(st.sampled_from(names), st.sampled_from(ORDINARY), max_size=6),
        label="ordinary layouts",
    )
    hostile = data.draw(
        st.dictionaries(st.sampled_from(names), st.sampled_from(HOSTILE), max_size=2),
        label="hostile layouts",
    )
    kinds = {**ordinary, **hostile}
    extra = data.draw(
        st.one_of(st.none(), st.sampled_from(["extra", "CNN/more", "CNN_high_7/W_carry"])),
        label="extra dataset",
    )
    path, other = root / "case.hdf5", root / "other.hdf5"
    write_layout(path, values, kinds, extra, other)
    for var in target.weights:
        var.assign(np.zeros(var.shape, "float32"))
    options = options_lib.validate_options(TINY_OPTIONS)
    try:
        original.check_weights_file(str(path), options)
        original.load_original_weights(str(path), target.token_encoder, target.bilm)
    except InputError as err:
        message = str(err)
        assert hostile or extra, message
        assert str(path) in message and "\n" not in message
        named = set(hostile) | ({extra} if extra else set())
        assert any(repr(name) in message for name in named), message
        causes = set(hostile.values()) | ({"extra dataset"} if extra else set())
        event("refused", ", ".join(sorted(causes)))
        return
    assert not hostile and not extra, (kinds, extra)
    event("loaded", ", ".join(sorted(set(kinds.values()))) or "plain")
    # Every variable a dataset fills, against the random model the file was saved from.
    ports = zip(
        original.weight_table(target.token_encoder, target.bilm),
        original.weight_table(source.token_encoder, source.bilm),
    )
    pairs = [(a, b) for p, q in ports for (a, _), (b, _) in zip(p.slots, q.slots)]
    assert len(pairs) > len(values)  # the LSTM ports fill two variables each
    for var, want in pairs:
        got, want = var.numpy(), want.numpy()
        if var is target.token_encoder.char_embed:
            got, want = got[1:], want[1:]  # row 0 (padding) is not in the file
        np.testing.assert_array_equal(got, want)
