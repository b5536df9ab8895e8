"""`keras-elmo beam-embed` on the DirectRunner against `keras-elmo embed`, line by line.

Apache Beam is an extra (`pip install '.[beam]'`, which the CI installs).
Without it these tests FAIL, each with a message saying so, unless
KERAS_ELMO_NO_BEAM=1 says it is missing on purpose: a silent skip would be
counted as a pass.
"""

import json
import os
import random
import subprocess
import sys

import h5py
import pytest
from support.paths import REPO
from support.tolerance import assert_same_up_to_path

from keras_elmo.cli import main

try:
    import apache_beam as beam

    from keras_elmo.integrations import beam as kbeam

    BEAM_MISSING = None
except ImportError as err:  # pragma: no cover - depends on the installation
    BEAM_MISSING = str(err)

if BEAM_MISSING and os.environ.get("KERAS_ELMO_NO_BEAM") == "1":
    pytest.skip("KERAS_ELMO_NO_BEAM=1: Apache Beam left out on purpose", allow_module_level=True)


@pytest.fixture(autouse=True)
def _beam_installed():
    if BEAM_MISSING:
        pytest.fail(
            f"Apache Beam is not installed ({BEAM_MISSING}): pip install '.[beam]', "
            "or set KERAS_ELMO_NO_BEAM=1 to leave these tests out on purpose."
        )


WORDS = (
    "the cat sat on a mat and dog ran far away , . ! ? hello world "
    "naïve café Zürich 東京 -- ( ) don't it's"
).split()


def _corpus(seed, n_lines, long_at):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25))) for _ in range(n_lines)]
    lines[7] = lines[3]  # duplicates: each keeps its own line number
    lines[8] = lines[3]
    lines[long_at] = " ".join(rng.choice(WORDS) for _ in range(300))  # one long line
    lines[11] = "\t spaced   out\ttokens  "  # tabs and runs of spaces split like embed
    return lines


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two input files of a few hundred lines (the second with a BOM and CRLF line ends),
    and `keras-elmo embed`'s output for each."""
    root = tmp_path_factory.mktemp("beam_corpus")
    from support.bilm_fixture import FIXTURE_DIR as FIXTURES

    model = ["--options-file", str(FIXTURES / "options.json")]
    model += ["--weight-file", str(FIXTURES / "lm_weights.hdf5")]
    inputs = root / "in"
    inputs.mkdir()
    files = []
    for k, (n, long_at) in enumerate(((230, 100), (170, 20))):
        path = inputs / f"part-{k}.txt"
        text = "\n".join(_corpus(k, n, long_at)) + "\n"
        if k == 1:  # a byte-order mark and CRLF line ends, which embed's reader handles
            text = "\ufeff" + text.replace("\n", "\r\n")
        path.write_bytes(text.encode("utf-8"))
        files.append(path)
    expected = {}
    for layers in ("all", "top", "average"):
        for path in files:
            out = root / f"{path.stem}.{layers}.hdf5"
            code = main(["embed", str(path), str(out), f"--{layers}", "--quiet"] + model)
            assert code == 0
            with h5py.File(out, "r") as f:
                n = sum(1 for _ in open(path, encoding="utf-8-sig"))
                expected[layers, str(path)] = [f[str(i)][()] for i in range(n)]
    return {"root": root, "files": files, "model": model, "expected": expected}


def _beam_embed(corpus, out, *flags):
    pattern = str(corpus["root"] / "in" / "part-*.txt")
    code = main(
        ["beam-embed", "--input", pattern, "--output-dir", str(out)] + corpus["model"] + list(flags)
    )
    assert code == 0
    return kbeam.read_manifest(out)


def _assert_same_as_embed(corpus, out, layers):
    got = {}
    for path, line, array in kbeam.read_embeddings(out):
        got[path, line] = array
    total = 0
    for path in corpus["files"]:
        expected = corpus["expected"][layers, str(path)]
        for line, want in enumerate(expected):
            have = got[str(path), line]
            assert have.shape == want.shape, (path, line)
            assert_same_up_to_path(have, want, err_msg=f"{path}:{line}")
        total += len(expected)
    assert len(got) == total  # nothing extra


@pytest.mark.slow  # an in-process training run or export, over 5 s
@pytest.mark.parametrize("file_format", ["hdf5", "tfrecord"])
def test_beam_embed_equals_embed_line_by_line(corpus, tmp_path, file_format):
    out = tmp_path / "out"
    manifest = _beam_embed(corpus, out, "--all", "--format", file_format, "--batch-size", "16")
    _assert_same_as_embed(corpus, out, "all")
    assert manifest["complete"] is True
    assert manifest["format"] == file_format and manifest["layers"] == "all"
    assert [e["lines"] for e in manifest["inputs"]] == [230, 170]
    assert [e["path"] for e in manifest["inputs"]] == [str(p) for p in corpus["files"]]
    assert manifest["model"]["options"]["lstm"]["projection_dim"] == 16
    # Nothing but the manifest and the shards it lists (no temporary files).
    assert sorted(os.listdir(out)) == sorted(manifest["shards"] + ["manifest.json"])


@pytest.mark.parametrize("layers, file_format", [("top", "tfrecord"), ("average", "hdf5")])
def test_layer_choices_equal_embed(corpus, tmp_path, layers, file_format):
    out = tmp_path / "out"
    _beam_embed(corpus, out, f"--{layers}", "--format", file_format, "--max-batch-tokens", "200")
    _assert_same_as_embed(corpus, out, layers)


@pytest.mark.slow  # two worker processes
def test_two_worker_processes_give_the_same_output(corpus, tmp_path):
    out = tmp_path / "out"
    manifest = _beam_embed(
        corpus,
        out,
        "--all",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    _assert_same_as_embed(corpus, out, "all")
    assert manifest["complete"] is True


def test_hdf5_shard_layout(corpus, tmp_path):
    out = tmp_path / "out"
    manifest = _beam_embed(corpus, out, "--top", "--batch-size", "64")
    groups = {}
    for shard in manifest["shards"]:
        with h5py.File(out / shard, "r") as f:
            for group in f:
                groups.setdefault(group, set()).update(int(name) for name in f[group])
    # Groups are input-file indices, datasets 0-based line numbers.
    assert groups == {"0": set(range(230)), "1": set(range(170))}


def test_tfrecord_parses_with_tf_data(corpus, tmp_path):
    import tensorflow as tf

    out = tmp_path / "out"
    manifest = _beam_embed(corpus, out, "--top", "--format", "tfrecord")
    shards = [str(out / name) for name in manifest["shards"]]
    ds = tf.data.TFRecordDataset(shards).map(kbeam.parse_tfrecord_example)
    seen = 0
    for record in ds:
        index, line = int(record["input_index"]), int(record["line"])
        assert record["key"].numpy().decode() == f"{index}/{line}"
        want = corpus["expected"]["top", str(corpus["files"][index])][line]
        assert_same_up_to_path(record["array"].numpy(), want)
        seen += 1
    assert seen == 400


class _FailOnce:
    """Replaces the hdf5 sink's write_record: the `at`-th record raises, once."""

    def __init__(self, original, at):
        self.original, self.at, self.calls = original, at, 0

    def __get__(self, sink, owner):
        return lambda shard, element: self(sink, shard, element)

    def __call__(self, sink, shard, element):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("injected failure in the middle of a shard")
        return self.original(sink, shard, element)


def test_a_retried_bundle_leaves_no_partial_or_duplicate_shard(corpus, tmp_path, monkeypatch):
    # The BundleBasedDirectRunner retries a failed bundle (the FnApi one
    # fails the job); the failed attempt had written 120 records of its shard.
    failing = _FailOnce(kbeam._Hdf5Sink.write_record, at=121)
    monkeypatch.setattr(kbeam._Hdf5Sink, "write_record", failing)
    out = tmp_path / "out"
    manifest = _beam_embed(corpus, out, "--all", "--runner=BundleBasedDirectRunner")
    assert failing.calls == 400 + 120 + 1  # the whole bundle ran again
    assert sorted(os.listdir(out)) == sorted(manifest["shards"] + ["manifest.json"])
    _assert_same_as_embed(corpus, out, "all")  # every line once, none missing


def test_a_failed_run_leaves_no_shard_and_an_incomplete_manifest(corpus, tmp_path, monkeypatch):
    def always_fail(self, shard, element):
        raise RuntimeError("injected permanent failure")

    monkeypatch.setattr(kbeam._Hdf5Sink, "write_record", always_fail)
    out = tmp_path / "out"
    pattern = str(corpus["root"] / "in" / "part-*.txt")
    source = kbeam.ModelSource(options_file=corpus["model"][1], weight_file=corpus["model"][3])
    with pytest.raises(Exception, match="injected permanent failure"):
        kbeam.embed_corpus(pattern, out, source)
    assert not [name for name in os.listdir(out) if name.startswith("embeddings-")]
    assert kbeam.read_manifest(out)["complete"] is False
    with pytest.raises(ValueError, match="not complete"):
        next(kbeam.read_embeddings(out))
    # A second run into the same directory is refused, not mixed in.
    with pytest.raises(ValueError, match="already holds"):
        kbeam.embed_corpus(pattern, out, source)


def test_embed_corpus_checks_its_embedding_options_before_any_io(tmp_path):
    """embed_corpus takes EmbedSentences' options: the same checks, before a file is touched."""
    from keras_elmo.errors import InputError

    out = tmp_path / "out"
    pattern = str(tmp_path / "none-*.txt")  # matches nothing: would fail later if reached
    with pytest.raises(InputError, match="layers must be one of"):
        kbeam.embed_corpus(pattern, out, "elmo-small-en", layers="middle")
    with pytest.raises(InputError, match="tokenizer must be one of"):
        kbeam.embed_corpus(pattern, out, "elmo-small-en", tokenizer="spacy")
    with pytest.raises(InputError, match="batch_size must be"):
        kbeam.embed_corpus(pattern, out, "elmo-small-en", batch_size=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'stateful'"):
        kbeam.embed_corpus(pattern, out, "elmo-small-en", stateful=True)
    # Options are keywords only: a fourth positional argument is refused, not misread.
    with pytest.raises(TypeError, match="positional"):
        kbeam.embed_corpus(pattern, out, "elmo-small-en", "top")
    assert not out.exists()


def test_a_bytes_element_that_is_not_utf8_is_named():
    from keras_elmo.errors import InputError

    tokenize = kbeam.EmbedSentences("elmo-small-en").tokenizer
    assert tokenize(("k", b"caf\xc3\xa9 b")) == ("k", ["café", "b"])
    with pytest.raises(InputError, match=r"element 'doc-7' is not valid UTF-8 \(byte 2"):
        tokenize(("doc-7", b"ok\xff"))


def test_read_embeddings_checks_counts_against_the_manifest(corpus, tmp_path):
    out = tmp_path / "out"
    _beam_embed(corpus, out, "--top")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["inputs"][1]["lines"] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="171 lines but 170 arrays"):
        list(kbeam.read_embeddings(out))


def test_embed_sentences_raw_text_and_tokenizers(fixture_dir):
    """The PTransform alone: raw sentences and token lists, against the layer run per sentence."""
    from apache_beam.testing.util import assert_that

    from keras_elmo import ElmoLayer
    from keras_elmo.text import tokenization

    layer = ElmoLayer.from_original(
        fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", output_mode="dict"
    )
    sentences = {"a": "Don't stop, (please) now.", "b": "one", "c": "x y z"}
    tokens = {"t": ["pre", "tokenized", "stays", "as", "given,"]}
    source = kbeam.ModelSource(
        options_file=str(fixture_dir / "options.json"),
        weight_file=str(fixture_dir / "lm_weights.hdf5"),
    )
    expected = {}
    for key, sentence in sentences.items():
        expected[key] = tokenization.tokenize_python(sentence, "punctuation")
    expected.update(tokens)
    for key, toks in expected.items():
        import tensorflow as tf

        expected[key] = layer(tf.constant([toks]))["lstm_outputs2"].numpy()[0]

    def check(results):
        got = dict(results)
        assert sorted(got) == sorted(expected)
        for key, want in expected.items():
            assert_same_up_to_path(got[key], want, err_msg=key)

    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(list(sentences.items()) + list(tokens.items()))
            | kbeam.EmbedSentences(source, layers="top", tokenizer="punctuation", batch_size=2)
        )
        assert_that(out, check)
    assert expected["a"].shape == (
        len(tokenization.tokenize_python(sentences["a"], "punctuation")),
        32,
    )


def test_model_batches_bound_sentences_and_tokens():
    elements = [(k, ["w"] * n) for k, n in enumerate([5, 1, 9, 3, 3, 40, 2])]
    calls = list(kbeam.model_batches(elements, batch_size=3, max_batch_tokens=12))
    assert [[len(t) for _, t in call] for call in calls] == [[1, 2, 3], [3, 5], [9], [40]]
    for call in calls:
        assert len(call) <= 3
        assert len(call) == 1 or len(call) * max(len(t) for _, t in call) <= 12
    assert sorted(k for call in calls for k, _ in call) == list(range(7))


def test_token_budget_is_the_default():
    """The issue's batch: one 16,000-token sentence among 63 short ones runs alone."""
    from keras_elmo.jobs import batching

    handler = kbeam.ElmoModelHandler("elmo-small-en")
    assert handler.max_batch_tokens == batching.BATCH_TOKENS
    elements = [(k, ["w"] * (3 + k % 10)) for k in range(63)] + [(63, ["w"] * 16000)]
    calls = list(kbeam.model_batches(elements, batch_size=64))
    assert [len(t) for _, t in calls[-1]] == [16000]
    for call in calls[:-1]:
        assert len(call) * max(len(t) for _, t in call) <= batching.BATCH_TOKENS
    assert sorted(k for call in calls for k, _ in call) == list(range(64))
    # None: sentences only, as before.
    assert len(list(kbeam.model_batches(elements, batch_size=64, max_batch_tokens=None))) == 1


def test_an_element_over_the_token_bound_is_refused():
    from keras_elmo import limits
    from keras_elmo.errors import InputError

    tokenize = kbeam._Tokenizer("whitespace")
    at = " ".join(["w"] * limits.MAX_TOKENS_PER_LINE)
    assert len(tokenize(("a", at))[1]) == limits.MAX_TOKENS_PER_LINE
    for value in (at + " w", [*at.split(), "w"]):
        with pytest.raises(InputError, match=r"element 'k' has 32769 tokens, over the limit"):
            tokenize(("k", value))


def test_cli_batch_tokens(tmp_path, monkeypatch):
    from keras_elmo.jobs import batching

    seen = {}

    def fake(inputs, output_dir, source, **kwargs):
        seen.update(kwargs)
        return {"inputs": [], "complete": True, "shards": []}

    monkeypatch.setattr(kbeam, "embed_corpus", fake)
    argv = ["beam-embed", "--input", str(tmp_path / "a.txt"), "--output-dir", str(tmp_path)]
    assert main([*argv, "--quiet"]) == 0
    assert seen["max_batch_tokens"] == batching.BATCH_TOKENS
    for flag, value, want in (("--batch-tokens", "none", None), ("--max-batch-tokens", "9", 9)):
        assert main([*argv, "--quiet", flag, value]) == 0
        assert seen["max_batch_tokens"] == want


def test_keras_file_source_has_the_same_weights_hash(fixture_dir, tmp_path):
    import keras

    from keras_elmo import ElmoLayer

    layer = ElmoLayer.from_original(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    inputs = keras.Input((None,), dtype="string")
    keras.Model(inputs, layer(inputs)).save(tmp_path / "m.keras")
    from_files = kbeam.load_layer(
        kbeam.ModelSource(
            options_file=str(fixture_dir / "options.json"),
            weight_file=str(fixture_dir / "lm_weights.hdf5"),
        )
    )
    from_keras = kbeam.load_layer(kbeam.ModelSource(keras_file=str(tmp_path / "m.keras")))
    assert kbeam.weights_sha256(from_files) == kbeam.weights_sha256(from_keras)
    # --matmul-dtype reaches the layer from either source, the weights unchanged.
    for source in (
        kbeam.ModelSource(keras_file=str(tmp_path / "m.keras")),
        kbeam.ModelSource(
            options_file=str(fixture_dir / "options.json"),
            weight_file=str(fixture_dir / "lm_weights.hdf5"),
        ),
    ):
        low = kbeam.load_layer(source, matmul_dtype="bfloat16")
        assert low.matmul_dtype == "bfloat16"
        assert kbeam.weights_sha256(low) == kbeam.weights_sha256(from_files)
    other = ElmoLayer(from_files.options, output_mode="dict")
    other.build()
    assert kbeam.weights_sha256(other) != kbeam.weights_sha256(from_files)


def test_cli_errors(tmp_path, capsys):
    code = main(
        ["beam-embed", "--input", str(tmp_path / "none-*.txt"), "--output-dir", str(tmp_path / "o")]
    )
    assert code == 2
    assert "no input file matches" in capsys.readouterr().err


@pytest.mark.slow  # a fresh Python process
def test_cli_help_imports_neither_beam_nor_tensorflow():
    # `beam-embed --help` loads neither Beam nor TensorFlow (as the CLI runs it).
    probe = (
        "import sys\n"
        "sys.argv[0] = 'keras-elmo'\n"
        "from keras_elmo.cli import main\n"
        "try:\n    main(['beam-embed', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('apache_beam', 'tensorflow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert "--max-batch-tokens" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_an_empty_line_follows_embeds_rule(fixture_dir, tmp_path, capsys):
    """A whitespace-only line: beam-embed does what `embed` does with it."""
    src = tmp_path / "in" / "a.txt"
    src.parent.mkdir()
    src.write_text("one two\n \t \nthree\n", encoding="utf-8")
    model = ["--options-file", str(fixture_dir / "options.json")]
    model += ["--weight-file", str(fixture_dir / "lm_weights.hdf5")]
    embed_code = main(["embed", str(src), str(tmp_path / "e.hdf5"), "--top", "--quiet"] + model)
    embed_err = capsys.readouterr().err
    out = tmp_path / "out"
    args = ["beam-embed", "--input", str(src), "--output-dir", str(out), "--top", "--quiet"]
    beam_code = main(args + model)
    beam_err = capsys.readouterr().err
    assert beam_code == embed_code
    if embed_code == 0:  # the line is a value: compare it
        with h5py.File(tmp_path / "e.hdf5", "r") as f:
            want = f["1"][()]
        got = {line: array for _, line, array in kbeam.read_embeddings(out)}
        assert got[1].shape == want.shape
    else:  # the line is an error: the same one, naming the line
        message = embed_err.split("error: ", 1)[1].strip()
        assert "line 2" in message and message in beam_err


def test_preset_source_is_the_shipped_model():
    from support.paths import REPO

    shipped = REPO / "saved_models" / "elmo-small-en"
    by_name = kbeam.load_layer(kbeam.ModelSource(preset="elmo-small-en"))
    by_files = kbeam.load_layer(
        kbeam.ModelSource(
            options_file=str(shipped / "options.json"),
            weight_file=str(shipped / "weights.hdf5"),
        )
    )
    assert by_name.output_mode == "dict" and not by_name.stateful
    assert kbeam.weights_sha256(by_name) == kbeam.weights_sha256(by_files)
