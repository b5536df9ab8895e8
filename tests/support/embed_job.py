"""Helpers of the `keras-elmo embed` tests: a tiny model on disk, inputs,
the command's arguments, running it in a subprocess, comparing outputs."""

import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
from support.paths import REPO
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

WORDS = "the a of cat dog sat on mat ran far away quickly big small red green blue".split()


def save_tiny_model(folder, seed=7):
    """The tiny random model saved as options.json + weights.hdf5 in `folder`."""
    import keras

    from keras_elmo.layers.elmo_layer import ElmoLayer

    keras.utils.set_random_seed(seed)
    layer = ElmoLayer(TINY_OPTIONS)
    layer.build()
    options_file, weight_file = folder / "options.json", folder / "weights.hdf5"
    layer.save_original(str(options_file), str(weight_file))
    return options_file, weight_file


def write_sentences(path, n, seed=0):
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(1, 16))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def embed_args(tiny_model, src, out, *flags):
    options_file, weight_file = tiny_model
    return [
        "embed",
        str(src),
        str(out),
        "--options-file",
        str(options_file),
        "--weight-file",
        str(weight_file),
        "--quiet",
        *flags,
    ]


def reference_job(tiny_model, folder, n_lines, flags):
    """`folder`/in.txt of `n_lines` sentences and its output from an undisturbed
    in-process run with `flags`: (input, output)."""
    from keras_elmo.cli import main

    src = folder / "in.txt"
    write_sentences(src, n_lines)
    assert main(embed_args(tiny_model, src, folder / "reference.hdf5", *flags)) == 0
    return src, folder / "reference.hdf5"


def embed_command(tiny_model, src, out, *flags):
    """The `keras-elmo embed` command line for a subprocess."""
    return [sys.executable, "-m", "keras_elmo.cli", *embed_args(tiny_model, src, out, *flags)]


def subprocess_env():
    # TF_CPP_MIN_LOG_LEVEL 3, as the command sets it when unset (conftest sets 2):
    # its stderr is then the command's own lines only.
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def start_embed(tiny_model, src, out, *flags):
    return subprocess.Popen(
        embed_command(tiny_model, src, out, *flags),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed_parts(folder):
    return sorted(folder.glob("part-*.hdf5")) if folder.is_dir() else []


def wait_for_parts(proc, folder, n, timeout=240):
    """Wait until `folder` holds `n` committed parts while `proc` still runs."""
    deadline = time.monotonic() + timeout
    while len(committed_parts(folder)) < n and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress in OUTPUT.partial/"
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the test could step in"


def read_output(path):
    with h5py.File(path, "r") as f:
        index = json.loads(f["sentence_to_index"][0])
        data = {name: f[name][...] for name in f if name != "sentence_to_index"}
        return index, data, dict(f.attrs)


def assert_same_output(got, want):
    index_got, data_got, attrs_got = read_output(got)
    index_want, data_want, _ = read_output(want)
    assert index_got == index_want
    assert sorted(data_got) == sorted(data_want)
    for name, value in data_want.items():
        assert data_got[name].shape == value.shape and data_got[name].dtype == value.dtype
        # Another process, same batches: the path tolerance (support/tolerance.py).
        assert_same_up_to_path(data_got[name], value)
    assert attrs_got["complete"]
