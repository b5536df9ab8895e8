"""Training checkpoints under kills: a run killed in the middle of a checkpoint
save resumes to the weights and step count of a run that was never killed.

The killed runs are `keras-elmo train` in a subprocess that SIGKILLs itself
at one precise moment of the second epoch's save (a hook on `open` or
`os.replace`, installed before the command runs); the resumed run is the
plain command, which must exit 0 and end where the uninterrupted one ends.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support.paths import REPO
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

from keras_elmo.training import checkpoint, data

EPOCHS, STEPS = 3, 3
WORDS = "the a cat dog saw liked big small .".split()

# Kills this process at the `count`-th event `what` ("open" for writing, or
# "replace" onto) on a file named `name`, before or after it happens.
KILLER = textwrap.dedent("""
    import builtins, os, signal, sys
    when, what, name, count = sys.argv[1:5]
    seen = [0]

    def hit(path):
        if os.path.basename(os.fspath(path)).endswith(name):
            seen[0] += 1
            return seen[0] == int(count)
        return False

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if what == "open":
        real_open = builtins.open
        def open_(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and "w" in mode and hit(file):
                die()
            return real_open(file, mode, *args, **kwargs)
        builtins.open = open_
    else:
        real_replace = os.replace
        def replace(src, dst, **kwargs):
            target = hit(dst)
            if target and when == "before":
                die()
            real_replace(src, dst, **kwargs)
            if target:
                die()
        os.replace = replace
    from keras_elmo.cli import main
    sys.exit(main(sys.argv[5:]))
""")

# (when, what, file name, which occurrence): all in the save after epoch 2.
KILL_POINTS = {
    # new weights on disk, the metadata not yet rewritten (the case)
    "before_metadata_write": ("before", "open", "training_metadata.json", 2),
    # the new weights complete under their temporary name, not yet renamed
    "before_weights_rename": ("before", "replace", "epoch-000002.weights.h5", 1),
    # the new metadata committed, the old weights not yet cleaned up
    "after_metadata_rename": ("after", "replace", "training_metadata.json", 2),
}


def _corpus(directory):
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(80)]
    path = directory / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = directory / "vocab.txt"
    data.write_vocab(data.build_vocab(data.count_tokens(str(path))), str(vocab))
    options = directory / "options.json"
    options.write_text(json.dumps(TINY_OPTIONS), encoding="utf-8")
    return path, vocab, options


def _train_argv(files, out, ckpt):
    path, vocab, options = files
    return [
        "train",
        str(path),
        "--vocab",
        str(vocab),
        "--options",
        str(options),
        "--output-dir",
        str(out),
        "--checkpoint-dir",
        str(ckpt),
        "--batch-size",
        "8",
        "--steps-per-epoch",
        str(STEPS),
        "--epochs",
        str(EPOCHS),
        "--n-negative",
        "5",
        "--shuffle-buffer",
        "20",
        "--quiet",
    ]


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _trained(out):
    """The trained model's arrays: the published weights file and the softmax."""
    import h5py

    arrays = {}
    with h5py.File(out / "weights.hdf5", "r") as f:
        f.visititems(
            lambda name, obj: arrays.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None
        )
    with np.load(out / "softmax.npz") as soft:
        arrays.update({f"softmax/{k}": soft[k] for k in soft.files})
    return arrays


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("straight")
    files = _corpus(directory)
    out = directory / "out"
    proc = _run(["-m", "keras_elmo.cli", *_train_argv(files, out, directory / "ckpt")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["steps"] == EPOCHS * STEPS
    return _trained(out)


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_kill_during_a_checkpoint_save_resumes_to_the_uninterrupted_weights(
    point, uninterrupted, tmp_path
):
    files = _corpus(tmp_path)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    argv = _train_argv(files, out, ckpt)
    script = tmp_path / "killer.py"
    script.write_text(KILLER, encoding="utf-8")
    when, what, name, count = KILL_POINTS[point]
    killed = _run([script, when, what, name, str(count), *argv])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not out.exists()  # it died before the end

    resumed = _run(["-m", "keras_elmo.cli", *argv])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    # The step count of an uninterrupted run: no epoch repeated, none skipped.
    assert json.loads(resumed.stdout)["steps"] == EPOCHS * STEPS
    log = json.loads((out / "training_log.json").read_text())
    assert log["steps"] == EPOCHS * STEPS
    got = _trained(out)
    assert sorted(got) == sorted(uninterrupted)
    # Two processes on one machine: the path tolerance (support/tolerance.py).
    for key in sorted(uninterrupted):
        assert_same_up_to_path(got[key], uninterrupted[key], err_msg=key)
    # The directory holds the last checkpoint and its backup, nothing half-written.
    metadata = json.loads((ckpt / checkpoint.METADATA_FILE).read_text())
    backup = json.loads((ckpt / (checkpoint.METADATA_FILE + ".bkp")).read_text())
    assert (metadata["epoch"], metadata["steps"], backup["epoch"]) == (3, 9, 2)
    assert sorted(os.listdir(ckpt)) == [
        "epoch-000002.weights.h5",
        "epoch-000003.weights.h5",
        "training_metadata.json",
        "training_metadata.json.bkp",
    ]
