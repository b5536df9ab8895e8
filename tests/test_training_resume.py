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

import keras
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


# ------------------------------------------------------------ damaged checkpoints


def _tiny_trainer(vocab_size=12, seed=0):
    from keras_elmo.training import loop, trainer

    keras.utils.set_random_seed(seed)
    model = trainer.BiLMTrainer(TINY_OPTIONS, vocab_size, n_negative=4, seed=0)
    model.compile(optimizer=loop.make_optimizer())
    model.optimizer.build(model.trainable_variables)
    return model


def _save_legacy(model, directory, epoch, suffix=""):
    """A checkpoint as keras_elmo 0.3 wrote it (Keras's BackupAndRestore layout)."""
    model.save_weights(str(directory / "latest.weights.h5"), overwrite=True)
    if suffix:
        os.replace(directory / "latest.weights.h5", directory / f"latest.weights.h5{suffix}")
    (directory / f"training_metadata.json{suffix}").write_text(
        json.dumps({"epoch": epoch, "batch": 0}), encoding="utf-8"
    )


def test_an_empty_metadata_file_resumes_from_the_valid_backup_beside_it(tmp_path):
    # The state a kill during 0.3's unsynced metadata write leaves: an empty
    # training_metadata.json, the previous checkpoint complete as the backup.
    from keras_elmo.training import loop

    saved = _tiny_trainer(seed=1)
    _save_legacy(saved, tmp_path, 1, suffix=".bkp")
    _tiny_trainer(seed=2).save_weights(str(tmp_path / "latest.weights.h5"))
    (tmp_path / "training_metadata.json").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=r"is empty; resuming from the backup .*epoch 1"):
        assert loop.backup_epoch(str(tmp_path)) == 1
    with pytest.warns(RuntimeWarning, match="is empty"):
        record = checkpoint.resume_point(str(tmp_path))
    model = _tiny_trainer(seed=3)
    checkpoint.load_checkpoint(model, str(tmp_path), record)
    for got, want in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(got, want)


def _save_pair(tmp_path, seed=1):
    model = _tiny_trainer(seed=seed)
    first = checkpoint.save_checkpoint(model, str(tmp_path), 1, STEPS)
    second = checkpoint.save_checkpoint(model, str(tmp_path), 2, STEPS, previous=first)
    return first, second


@pytest.mark.parametrize(
    "damage,why",
    [
        (lambda d: (d / "training_metadata.json").unlink(), "is missing"),
        (lambda d: (d / "training_metadata.json").write_bytes(b""), "is empty"),
        (lambda d: (d / "training_metadata.json").write_bytes(b'{"epoch": 2, "wei'), "not valid"),
        (lambda d: (d / "training_metadata.json").write_bytes(b"\xff\xfe"), "not valid JSON"),
        (lambda d: (d / "training_metadata.json").write_text("[2]"), "not a JSON object"),
        (lambda d: (d / "epoch-000002.weights.h5").unlink(), "epoch-000002.weights.h5 is missing"),
        (lambda d: _truncate(d / "epoch-000002.weights.h5"), "has 100 bytes, the metadata says"),
        (lambda d: _flip_a_byte(d / "epoch-000002.weights.h5"), "does not match the digest"),
        (lambda d: _rewrite(d, weights="../epoch-000002.weights.h5"), "not a file of this dir"),
        (lambda d: _rewrite(d, epoch=-1), "its epoch is -1"),
        (lambda d: _rewrite(d, steps="6"), "its steps is '6'"),
    ],
)
def test_a_damaged_checkpoint_falls_back_to_the_backup(tmp_path, damage, why):
    first, _ = _save_pair(tmp_path)
    damage(tmp_path)
    with pytest.warns(RuntimeWarning) as caught:
        record = checkpoint.resume_point(str(tmp_path))
    assert record == first
    assert len(caught) == 1
    message = str(caught[0].message)
    assert why in message and "resuming from the backup checkpoint (epoch 1)" in message


def test_no_usable_checkpoint_is_one_error_naming_both_files(tmp_path):
    from keras_elmo.errors import InputError

    _save_pair(tmp_path)
    (tmp_path / "training_metadata.json").write_bytes(b"")
    _flip_a_byte(tmp_path / "epoch-000001.weights.h5")
    with pytest.raises(InputError) as err:
        checkpoint.resume_point(str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "training_metadata.json is empty" in message
    assert "training_metadata.json.bkp is epoch-000001.weights.h5 does not match" in message


def test_the_train_command_with_no_usable_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    from keras_elmo.cli import main

    files = _corpus(tmp_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "training_metadata.json").write_bytes(b"")
    assert main(_train_argv(files, tmp_path / "out", ckpt)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keras-elmo train: error: no usable checkpoint")
    assert "training_metadata.json is empty, training_metadata.json.bkp is missing" in err[0]


def test_nothing_to_resume(tmp_path):
    assert checkpoint.resume_point(str(tmp_path / "new")) is None
    assert checkpoint.resume_point(str(tmp_path)) is None  # empty directory
    (tmp_path / "notes.txt").write_text("mine")
    assert checkpoint.resume_point(str(tmp_path)) is None


def test_a_save_keeps_the_previous_checkpoint_and_removes_older_ones(tmp_path):
    model = _tiny_trainer()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".tmp-999-epoch-000002.weights.h5").write_bytes(b"half")
    record = None
    for epoch in (1, 2, 3):
        record = checkpoint.save_checkpoint(model, str(tmp_path), epoch, STEPS, previous=record)
    assert sorted(os.listdir(tmp_path)) == [
        "epoch-000002.weights.h5",
        "epoch-000003.weights.h5",
        "notes.txt",
        "training_metadata.json",
        "training_metadata.json.bkp",
    ]
    assert checkpoint.resume_point(str(tmp_path)) == record
    backup = json.loads((tmp_path / "training_metadata.json.bkp").read_text())
    assert backup["epoch"] == 2 and backup["weights"] == "epoch-000002.weights.h5"


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(100)


def _flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _rewrite(directory, **changes):
    path = directory / "training_metadata.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


# ------------------------------------------------------------ in one process


class _StopAt(keras.callbacks.Callback):
    """Stops training after `step` optimizer steps (a time limit that hits mid-epoch)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.step:
            self.model.stop_training = True


@pytest.mark.slow  # three short in-process training runs
def test_a_run_stopped_inside_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    from keras_elmo.training import loop

    path, _, _ = _corpus(tmp_path)
    vocab = data.build_vocab(data.count_tokens(str(path)))
    kwargs = dict(batch_size=8, steps_per_epoch=STEPS, shuffle_buffer=20)

    def fresh(seed=0):
        model = _tiny_trainer(len(vocab), seed=seed)
        model.optimizer.learning_rate.assign(0.01)
        return model

    straight = fresh()
    loop.train(straight, str(path), vocab, epochs=EPOCHS, **kwargs)
    ckpt = str(tmp_path / "ckpt")
    # Stopped one step into epoch 2: only epoch 1 is a checkpoint.
    first = fresh()
    loop.train(
        first,
        str(path),
        vocab,
        epochs=EPOCHS,
        checkpoint_dir=ckpt,
        callbacks=[_StopAt(STEPS + 1)],
        **kwargs,
    )
    assert int(first.optimizer.iterations.numpy()) == STEPS + 1
    assert loop.backup_epoch(ckpt) == 1
    resumed = fresh(seed=5)  # other initial weights: all comes from the checkpoint
    log = loop.train(resumed, str(path), vocab, epochs=EPOCHS, checkpoint_dir=ckpt, **kwargs)
    assert len(log.losses) == (EPOCHS - 1) * STEPS
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS
    assert loop.backup_epoch(ckpt) == EPOCHS
    # One process, one path: the same computation, bitwise.
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_resuming_with_another_steps_per_epoch_is_refused(tmp_path):
    from keras_elmo.errors import InputError
    from keras_elmo.training import loop

    path, _, _ = _corpus(tmp_path)
    vocab = data.build_vocab(data.count_tokens(str(path)))
    model = _tiny_trainer(len(vocab))
    checkpoint.save_checkpoint(model, str(tmp_path / "ckpt"), 1, STEPS)
    with pytest.raises(InputError, match="written with 3 steps per epoch, this run has 4"):
        loop.train(
            model, str(path), vocab, steps_per_epoch=4, checkpoint_dir=str(tmp_path / "ckpt")
        )


@pytest.mark.slow  # traces the training step (over 5 s)
def test_a_training_file_deleted_during_training_is_one_error(tmp_path):
    from keras_elmo.errors import MissingFileError
    from keras_elmo.training import loop

    path, _, _ = _corpus(tmp_path)
    vocab = data.build_vocab(data.count_tokens(str(path)))

    class Delete(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            path.unlink()  # after make_dataset checked it, before the first batch

    ckpt = tmp_path / "ckpt"
    with pytest.raises(MissingFileError) as err:
        loop.train(
            _tiny_trainer(len(vocab)),
            str(path),
            vocab,
            batch_size=8,
            steps_per_epoch=2,
            checkpoint_dir=str(ckpt),
            callbacks=[Delete()],
        )
    assert str(err.value) == (
        f"training file {path} disappeared during training; the checkpoints in {ckpt} are "
        "kept: put it back and run again to resume."
    )


@pytest.mark.parametrize("fail_at", ["weights write", "weights rename", "backup", "metadata"])
def test_a_full_disk_during_a_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    import errno

    model = _tiny_trainer()
    first = checkpoint.save_checkpoint(model, str(tmp_path), 1, STEPS)
    second = checkpoint.save_checkpoint(model, str(tmp_path), 2, STEPS, previous=first)
    full = OSError(errno.ENOSPC, "No space left on device")
    real_replace, real_save = os.replace, model.save_weights
    targets = {
        "weights rename": "epoch-000003.weights.h5",
        "backup": "training_metadata.json.bkp",
        "metadata": "training_metadata.json",
    }

    def replace(src, dst):
        if os.path.basename(dst) == targets.get(fail_at):
            raise full
        real_replace(src, dst)

    def save_weights(path, **kwargs):
        real_save(path, **kwargs)
        with open(path, "r+b") as f:  # half of it written
            f.truncate(os.path.getsize(path) // 2)
        raise full

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    if fail_at == "weights write":
        monkeypatch.setattr(model, "save_weights", save_weights)
    with pytest.raises(checkpoint.CheckpointWriteError) as err:
        checkpoint.save_checkpoint(model, str(tmp_path), 3, STEPS, previous=second)
    assert str(err.value) == (
        f"could not write the checkpoint of epoch 3 in {tmp_path}: No space left on device; "
        "the previous checkpoint there is intact."
    )
    assert checkpoint.resume_point(str(tmp_path)) == second  # no warning: it is the current one
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_a_checkpoint_directory_of_0_3_resumes_and_is_replaced_by_the_new_layout(tmp_path):
    saved = _tiny_trainer(seed=1)
    _save_legacy(saved, tmp_path, 1, suffix=".bkp")
    _save_legacy(saved, tmp_path, 2)
    record = checkpoint.resume_point(str(tmp_path))
    assert record == {"epoch": 2, "weights": "latest.weights.h5"}
    model = _tiny_trainer(seed=3)
    checkpoint.load_checkpoint(model, str(tmp_path), record)
    for got, want in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(got, want)
    new = checkpoint.save_checkpoint(model, str(tmp_path), 3, STEPS, previous=record)
    assert sorted(os.listdir(tmp_path)) == ["epoch-000003.weights.h5", "training_metadata.json"]
    assert checkpoint.resume_point(str(tmp_path)) == new
