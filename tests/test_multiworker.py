"""biLM training on two worker processes (MultiWorkerMirroredStrategy over 127.0.0.1).

Reference: one process, no strategy, fed the same global batches (worker 0's
batch and worker 1's batch concatenated, padded to one length) from the same
initial weights. Dropout is off (its masks are drawn per replica shape) and
the gradient clip is low enough to act, so the multi-worker clipping of the
global gradient is exercised. Adagrad, not Adam: Adam's first steps move a
weight by about lr * sign(gradient) (epsilon 1e-7), which turns float-rounding
differences in tiny gradients into differences far above 1e-4. Then a worker
is killed after the second of three epochs; a restart of both resumes from
the chief's checkpoint and ends where the reference ends.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import REPO

# Every test here runs two or three worker processes.
pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import json, os, signal, sys
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["tests"])
    from keras_elmo.training import loop
    strategy = loop.strategy_from_env()  # first, before any TensorFlow work
    import contextlib
    import keras, numpy as np, tensorflow as tf
    from conftest import TINY_OPTIONS
    from keras_elmo.training import data
    from keras_elmo.training.callbacks import BatchLog
    from keras_elmo.training.trainer import BiLMTrainer

    vocab = data.load_vocab(args["vocab"])
    files = args["files"]
    init = np.load(args["init"]) if os.path.exists(args["init"]) else None
    with strategy.scope() if strategy else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = BiLMTrainer(TINY_OPTIONS, len(vocab), n_negative=6, dropout=0.0, seed=3)
        if init is None:
            np.savez(args["init"], *model.get_weights())
        else:
            model.set_weights([init[f"arr_{k}"] for k in range(len(init.files))])
        model.compile(optimizer=loop.make_optimizer("adagrad", 0.2, 0.5))
    kwargs = dict(max_len=50, shuffle_buffer=40, seed=0, repeat=True, drop_remainder=True)
    log = BatchLog()
    if args["mode"] == "reference":
        def concat(a, b):
            t = tf.maximum(tf.shape(a["char_ids"])[1], tf.shape(b["char_ids"])[1])
            def pad(x, value):
                widths = [[0, 0], [0, t - tf.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
                return tf.pad(x, widths, constant_values=value)
            return {
                "char_ids": tf.concat([pad(a["char_ids"], 0), pad(b["char_ids"], 0)], 0),
                "word_ids": tf.concat([pad(a["word_ids"], -1), pad(b["word_ids"], -1)], 0),
            }
        halves = [
            data.make_dataset(loop.worker_files(files, k, 2), vocab, 4, **kwargs)
            for k in range(2)
        ]
        ds = tf.data.Dataset.zip(tuple(halves)).map(concat)
        model.fit(ds, epochs=args["epochs"], steps_per_epoch=3, callbacks=[log], verbose=0)
    else:
        class Die(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == args.get("die_after") and not loop.is_chief(strategy):
                    os.kill(os.getpid(), signal.SIGKILL)
        loop.train(
            model, files, vocab, batch_size=8, steps_per_epoch=3, epochs=args["epochs"],
            checkpoint_dir=args["ckpt"], max_len=50, shuffle_buffer=40, data_seed=0,
            callbacks=[log, Die()],
        )
    if loop.is_chief(strategy):
        out = {"losses": log.losses, "tokens": log.tokens,
               "steps": int(model.optimizer.iterations.numpy())}
        np.savez(args["out"] + ".npz", *model.get_weights())
        with open(args["out"] + ".json", "w") as f:
            json.dump(out, f)
""")

WORDS = "the a cat dog man woman saw liked chased big small red old".split()


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiworker")
    rng = np.random.default_rng(0)
    files = []
    for k in range(4):  # four shards: two per worker
        lines = [" ".join(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(60)]
        path = root / f"train-{k}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["<S>", "</S>", "<UNK>"] + WORDS) + "\n", encoding="utf-8")
    script = root / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    base = {
        "tests": str(REPO / "tests"),
        "vocab": str(vocab),
        "files": files,
        "init": str(root / "init.npz"),
    }
    reference = dict(base, mode="reference", epochs=3, out=str(root / "reference"))
    proc = _launch(script, reference, None)
    assert _wait(proc, 240) == 0, proc.stderr.read()[-3000:]
    return {"root": root, "script": script, "base": base, "reference": _result(reference["out"])}


def _launch(script, args, tf_config):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _cluster(script, args):
    """Start the two workers of a 127.0.0.1 cluster; returns their processes."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [
        _launch(script, args, {"cluster": cluster, "task": {"type": "worker", "index": k}})
        for k in range(2)
    ]


def _result(prefix):
    with open(prefix + ".json") as f:
        result = json.load(f)
    weights = np.load(prefix + ".npz")
    result["weights"] = [weights[f"arr_{k}"] for k in range(len(weights.files))]
    return result


def _assert_same_training(got, want, steps):
    assert got["steps"] == want["steps"]
    np.testing.assert_allclose(got["losses"], want["losses"][-steps:], rtol=1e-5)
    assert len(got["weights"]) == len(want["weights"])
    for a, b in zip(got["weights"], want["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_two_workers_match_one_process_with_the_same_global_batch(setup, tmp_path):
    args = dict(
        setup["base"], mode="train", epochs=3, ckpt=str(tmp_path / "ckpt"), out=str(tmp_path / "mw")
    )
    workers = _cluster(setup["script"], args)
    for proc in workers:
        assert _wait(proc, 240) == 0, proc.stderr.read()[-3000:]
    got = _result(args["out"])
    reference = setup["reference"]
    assert len(reference["losses"]) == 9 and got["tokens"] == reference["tokens"] > 0
    _assert_same_training(got, reference, steps=9)
    # Only the chief wrote the checkpoint, after each epoch.
    ckpt = json.loads((tmp_path / "ckpt" / "training_metadata.json").read_text())
    assert ckpt["epoch"] == 3


def test_resume_after_a_worker_is_killed(setup, tmp_path):
    ckpt = tmp_path / "ckpt"
    args = dict(setup["base"], mode="train", epochs=3, ckpt=str(ckpt), out=str(tmp_path / "mw"))
    chief, other = _cluster(setup["script"], dict(args, die_after=2))
    assert _wait(other, 240) == -signal.SIGKILL, other.stderr.read()[-3000:]
    # The chief saved epoch 2 and then waits for its dead peer: stop it too,
    # as a cluster manager restarting the job would.
    metadata = ckpt / "training_metadata.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(metadata.read_text())["epoch"] == 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    time.sleep(1.0)
    chief.kill()
    chief.wait()
    assert json.loads(metadata.read_text())["epoch"] == 2
    assert not os.path.exists(args["out"] + ".json")  # the job did not finish
    for proc in _cluster(setup["script"], args):
        assert _wait(proc, 240) == 0, proc.stderr.read()[-3000:]
    got = _result(args["out"])
    # The restarted job ran the third epoch only and ends where one process ends.
    assert len(got["losses"]) == 3
    _assert_same_training(got, setup["reference"], steps=3)


def test_keras_elmo_train_command_on_two_workers(setup, tmp_path):
    """The CLI: the same `keras-elmo train` on both workers; the chief writes the model."""
    out, ckpt = tmp_path / "model", tmp_path / "ckpt"
    command = [sys.executable, "-m", "keras_elmo.cli", "train", *setup["base"]["files"]]
    command += ["--vocab", setup["base"]["vocab"], "--output-dir", str(out)]
    command += ["--checkpoint-dir", str(ckpt), "--lstm-dim", "8", "--projection-dim", "4"]
    command += ["--char-dim", "4", "--filters", "[[1, 4], [2, 4]]", "--n-negative", "4"]
    command += ["--batch-size", "8", "--steps-per-epoch", "2", "--epochs", "1", "--quiet"]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for k in range(2):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": k}})
        procs.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, stderr[-3000:]
        assert json.loads(stdout)["steps"] == 2  # each worker reports the shared step count
    log = json.loads((out / "training_log.json").read_text())
    assert log["steps"] == 2 and (out / "weights.hdf5").is_file()
    assert json.loads((ckpt / "training_metadata.json").read_text())["epoch"] == 1
