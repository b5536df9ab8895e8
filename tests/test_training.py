"""The biLM objective, fit/resume/distribution, export and the training CLI."""

import json
import math
import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.paths import REPO
from support.processes import run_python_json
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, batch_to_ids
from keras_elmo.cli import main
from keras_elmo.training import data, loop, model_dir, sampler, trainer

WORDS = "the a cat dog man woman saw liked chased big small red old".split()


def _corpus(tmp_path, n=300, seed=0, name="train.txt"):
    """A little regular language: det (adj) noun verb det (adj) noun ."""
    rng = np.random.default_rng(seed)
    nouns, verbs, adjs, dets = WORDS[2:6], WORDS[6:9], WORDS[9:], WORDS[:2]
    lines = []
    for _ in range(n):
        s = [rng.choice(dets)] + ([rng.choice(adjs)] if rng.random() < 0.5 else [])
        s += [rng.choice(nouns), rng.choice(verbs), rng.choice(dets)]
        s += ([rng.choice(adjs)] if rng.random() < 0.5 else []) + [rng.choice(nouns), "."]
        lines.append(" ".join(s))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _model(vocab, seed=0, init_seed=None, **kwargs):
    keras.utils.set_random_seed(seed if init_seed is None else init_seed)
    kwargs.setdefault("n_negative", 6)
    kwargs.setdefault("dropout", 0.1)
    return trainer.BiLMTrainer(TINY_OPTIONS, len(vocab), seed=seed, **kwargs)


@pytest.fixture
def corpus(tmp_path):
    path = _corpus(tmp_path)
    vocab = data.build_vocab(data.count_tokens(path))
    return path, vocab


# ------------------------------------------------------------------ sampler


def test_log_uniform_sampler_matches_analytic_probabilities():
    v, n = 40, 200_000
    ids = sampler.log_uniform_sample(n, v, tf.constant([7, 3], tf.int64)).numpy()
    assert ids.min() >= 0 and ids.max() < v
    freq = np.bincount(ids, minlength=v) / n
    probs = sampler.log_uniform_probs(v)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-12)
    # binomial standard error is < 0.0012 for every id here
    np.testing.assert_allclose(freq, probs, atol=0.005)
    # stateless: the same seed gives the same draw, another one does not
    again = sampler.log_uniform_sample(n, v, tf.constant([7, 3], tf.int64)).numpy()
    other = sampler.log_uniform_sample(n, v, tf.constant([7, 4], tf.int64)).numpy()
    np.testing.assert_array_equal(ids, again)
    assert (ids != other).any()


def test_sampled_values_expected_counts():
    labels = tf.constant([[0], [5]], tf.int64)
    ids, true_exp, sampled_exp = sampler.sampled_values(
        labels, 16, 50, tf.constant([1, 2], tf.int64)
    )
    probs = sampler.log_uniform_probs(50)
    np.testing.assert_allclose(true_exp.numpy()[:, 0], 16 * probs[[0, 5]], rtol=1e-5)
    np.testing.assert_allclose(sampled_exp.numpy(), 16 * probs[ids.numpy()], rtol=1e-5)


def test_lm_targets():
    w = tf.constant([[0, 5, 6, 1, -1], [0, 7, 1, -1, -1]])
    f, b = trainer.lm_targets(w)
    assert f.numpy().tolist() == [[5, 6, 1, -1, -1], [7, 1, -1, -1, -1]]
    assert b.numpy().tolist() == [[-1, 0, 5, 6, -1], [-1, 0, 7, -1, -1]]


def test_model_argument_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        trainer.BiLMTrainer(TINY_OPTIONS, 2)
    with pytest.raises(ValueError, match="dropout"):
        trainer.BiLMTrainer(TINY_OPTIONS, 10, dropout=1.0)
    with pytest.raises(ValueError, match="optimizer"):
        loop.make_optimizer("sgdx")


# ------------------------------------------------------------------ training


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_tiny_model_learns_and_resume_reproduces_the_loss_curve(corpus, tmp_path):
    path, vocab = corpus
    kwargs = dict(batch_size=16, steps_per_epoch=10, shuffle_buffer=50)
    opt = lambda: loop.make_optimizer("adam", 0.02, 5.0)  # noqa: E731

    straight = _model(vocab)
    straight.compile(optimizer=opt())
    held = data.make_dataset(path, vocab, 32)
    ppl_before = trainer.perplexity(straight, held)["average"]
    log = loop.train(straight, path, vocab, epochs=2, **kwargs)
    losses = np.array(log.losses)
    assert len(losses) == 20 and np.isfinite(losses).all()
    assert losses[-8:].mean() < losses[:8].mean()

    ckpt = str(tmp_path / "ckpt")
    first = _model(vocab)
    first.compile(optimizer=opt())
    half1 = loop.train(first, path, vocab, epochs=1, checkpoint_dir=ckpt, **kwargs)
    assert loop.backup_epoch(ckpt) == 1
    # a different init and global seed: everything comes from the checkpoint
    resumed = _model(vocab, init_seed=123)
    resumed.compile(optimizer=opt())
    half2 = loop.train(resumed, path, vocab, epochs=2, checkpoint_dir=ckpt, **kwargs)
    assert int(resumed.optimizer.iterations.numpy()) == 20
    np.testing.assert_allclose(half1.losses + half2.losses, losses, atol=1e-5)

    # finite full-softmax perplexity, below the uniform one after training
    ppl = trainer.perplexity(straight, held)
    assert np.isfinite([ppl["forward"], ppl["backward"], ppl["average"]]).all()
    assert ppl["average"] < 0.9 * ppl_before, (ppl, ppl_before)
    assert ppl["average"] == pytest.approx(math.sqrt(ppl["forward"] * ppl["backward"]))


def test_full_softmax_perplexity_matches_numpy(corpus):
    path, vocab = corpus
    model = _model(vocab)
    ds = data.make_dataset(path, vocab, 64, buckets=[])
    got = trainer.perplexity(model, ds)
    total = {"f": [0.0, 0], "b": [0.0, 0]}
    w, b = model.softmax.w.numpy().astype(np.float64), model.softmax.b.numpy().astype(np.float64)
    for batch in ds:
        fwd, bwd = (x.numpy().astype(np.float64) for x in model.top_outputs(batch["char_ids"]))
        words = batch["word_ids"].numpy()
        for i in range(words.shape[0]):
            n = int((words[i] >= 0).sum())
            for t in range(n):
                for key, h, target in (("f", fwd, t + 1), ("b", bwd, t - 1)):
                    if 0 <= target < n:
                        logits = h[i, t] @ w.T + b
                        logz = logits.max() + np.log(np.exp(logits - logits.max()).sum())
                        total[key][0] += logz - logits[words[i, target]]
                        total[key][1] += 1
    lf, lb = total["f"][0] / total["f"][1], total["b"][0] / total["b"][1]
    assert got["tokens"] == total["f"][1]
    np.testing.assert_allclose(got["forward"], math.exp(lf), rtol=1e-4)
    np.testing.assert_allclose(got["backward"], math.exp(lb), rtol=1e-4)
    np.testing.assert_allclose(got["average"], math.exp((lf + lb) / 2), rtol=1e-4)
    # model.evaluate (test_step) reports the same full-softmax losses
    model.compile(optimizer=loop.make_optimizer())
    res = model.evaluate(ds, return_dict=True, verbose=0)
    np.testing.assert_allclose([res["forward_loss"], res["backward_loss"]], [lf, lb], rtol=1e-4)


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_export_original_format_round_trip(corpus, tmp_path):
    path, vocab = corpus
    model = _model(vocab)
    model.compile(optimizer=loop.make_optimizer("adam", 0.01))
    loop.train(model, path, vocab, batch_size=16, steps_per_epoch=3, epochs=1)
    out = tmp_path / "out"
    model_dir.export_model(model, str(out), vocab=vocab, extra_log={"steps": 3})
    for name in (
        "options.json",
        "weights.hdf5",
        "vocab.txt",
        "softmax.npz",
        "elmo.keras",
        "training_log.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "options.json").read_text())["char_cnn"]["n_characters"] == 262

    sentences = [["the", "big", "cat", "saw", "a", "dog", "."], ["a", "man", "."]]
    ids = batch_to_ids(sentences)
    loaded = ElmoLayer.from_original(
        str(out / "options.json"), str(out / "weights.hdf5"), output_mode="dict"
    )
    copied = model_dir.to_elmo_layer(model, output_mode="dict")
    a, b = loaded(ids), copied(ids)
    for key in ("word_emb", "lstm_outputs1", "lstm_outputs2"):
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    # an independent path: the trainer's own top layer on "<S> ... </S>"
    wrapped = [["<S>"] + s + ["</S>"] for s in sentences]
    fwd, bwd = model.top_outputs(batch_to_ids(wrapped))
    top = np.concatenate([fwd.numpy(), bwd.numpy()], -1)
    for i, s in enumerate(sentences):
        assert_same_up_to_path(a["lstm_outputs2"][i, : len(s)].numpy(), top[i, 1 : len(s) + 1])
    # perplexity through the exported files equals the in-memory model's
    reloaded = model_dir.load_trained(str(out))
    ds = data.make_dataset(path, vocab, 64)
    np.testing.assert_allclose(
        trainer.perplexity(reloaded, ds)["average"],
        trainer.perplexity(model, ds)["average"],
        rtol=1e-5,
    )
    keras_model = keras.saving.load_model(str(out / "elmo.keras"))
    plain = ElmoLayer.from_original(str(out / "options.json"), str(out / "weights.hdf5"))
    assert_same_up_to_path(keras_model(ids).numpy(), plain(ids).numpy())


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras, numpy as np
    sys.path.insert(0, sys.argv[1])
    from support.tiny_model import TINY_OPTIONS
    from keras_elmo.training import data
    from keras_elmo.training import callbacks, loop, model_dir, sampler, trainer

    path = sys.argv[2]
    vocab = data.build_vocab(data.count_tokens(path))
    batches = list(data.make_dataset(path, vocab, 8, buckets=[]).take(3))
    def pad(x, value):
        extra = [[0, 0], [0, 12 - x.shape[1]]] + [[0, 0]] * (x.shape.rank - 2)
        return tf.pad(x, extra, constant_values=value)
    ds = tf.data.Dataset.from_tensor_slices({
        "char_ids": tf.stack([pad(b["char_ids"], 0) for b in batches]),
        "word_ids": tf.stack([pad(b["word_ids"], -1) for b in batches])})

    def run(strategy):
        with strategy.scope():
            model = trainer.BiLMTrainer(TINY_OPTIONS, len(vocab), n_negative=6, dropout=0.0)
            model.set_weights(weights)
            model.compile(optimizer=loop.make_optimizer("adam", 0.01, 100.0))
        log = callbacks.BatchLog()
        model.fit(ds, epochs=1, callbacks=[log], verbose=0)
        return log.losses, log.tokens

    keras.utils.set_random_seed(0)
    weights = trainer.BiLMTrainer(TINY_OPTIONS, len(vocab)).get_weights()
    one = run(tf.distribute.get_strategy())
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps({"one": one, "two": two, "replicas": 2}))
""")


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus_matches_one_device(tmp_path):
    path = _corpus(tmp_path, n=40)
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    result = run_python_json([script, REPO / "tests", path], env=env)
    (loss1, tok1), (loss2, tok2) = result["one"], result["two"]
    assert tok1 == tok2 > 0 and len(loss1) == len(loss2) == 3
    # same batches, same negatives: the same global loss, also after two updates
    np.testing.assert_allclose(loss2, loss1, rtol=1e-4)


# ------------------------------------------------------------------ CLI


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_cli_build_vocab_train_perplexity(tmp_path, capsys):
    path = _corpus(tmp_path)
    held = _corpus(tmp_path, n=30, seed=1, name="held.txt")
    vocab_file = str(tmp_path / "vocab.txt")
    assert main(["build-vocab", vocab_file, path, "--min-count", "2"]) == 0
    vocab = data.load_vocab(vocab_file)
    assert vocab[:3] == ["<S>", "</S>", "<UNK>"] and "cat" in vocab
    options_file = tmp_path / "tiny_options.json"
    options_file.write_text(json.dumps(TINY_OPTIONS), encoding="utf-8")
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    argv = [
        path,
        "--vocab",
        vocab_file,
        "--output-dir",
        out,
        "--checkpoint-dir",
        ckpt,
        "--options",
        str(options_file),
        "--batch-size",
        "16",
        "--steps-per-epoch",
        "3",
        "--epochs",
        "2",
        "--n-negative",
        "5",
        "--log-every",
        "2",
        "--heldout-files",
        held,
    ]
    assert main(["train", *argv]) == 0
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["steps"] == 6 and "held.txt" in log["heldout"]
    capsys.readouterr()
    assert main(["perplexity", held, "--model-dir", out]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[held]["average"] == pytest.approx(log["heldout"]["held.txt"]["average"], rel=1e-5)
    # Flags before the files work too (they are not swallowed by the top parser).
    assert main(["build-vocab", "--min-count", "2", vocab_file, path]) == 0
    assert main(["perplexity", "--model-dir", out, str(tmp_path / "missing*.txt")]) == 2
    assert "no file matches" in capsys.readouterr().err
