"""ELMo on a real local Spark session: the same vectors as `keras-elmo embed`.

One Spark session (local[2], the system's Java) for the whole module; the
spark-embed kill test runs the command in subprocesses (their own JVMs).
400 lines with duplicates, non-ASCII text, an empty line and a 300-token
line, in 3 partitions; the reference is `embed_file` on the same lines (the
empty one left out: embed refuses it), compared within the path tolerance
(support/tolerance.py: Spark batches by tokens, embed by sentences).
"""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from support.paths import REPO
from support.tiny_model import random_tiny_layer
from support.tolerance import assert_same_up_to_path

pyspark = pytest.importorskip("pyspark")
pq = pytest.importorskip("pyarrow.parquet")

from keras_elmo.jobs import embed_file as embed_lib
from keras_elmo.jobs import parquet

# One JVM for the module: with `pytest -n 2 --dist loadgroup` its tests stay on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

WORDS = "the a of cat dog sat on mat ran far away quickly big small red green blue".split()
FOREIGN = ["Zürich", "café", "naïve", "日本語", "Ωμέγα", "straße", "ÆØÅ"]
EMPTY_AT, LONG_AT = 57, 200
SHIPPED = str(REPO / "saved_models" / "elmo-small-en")


def make_lines():
    rng = np.random.default_rng(3)
    words = WORDS + FOREIGN
    lines = [" ".join(rng.choice(words, rng.integers(1, 24))) for _ in range(388)]
    lines += lines[:10]  # duplicates, in other partitions than their twins
    lines.insert(EMPTY_AT, "")
    lines.insert(LONG_AT, " ".join(rng.choice(words, 300)))
    assert len(lines) == 400
    return lines


LINES = make_lines()
# The lines embed can read: every line but the empty one, in order.
KEPT = [k for k, line in enumerate(LINES) if line]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("keras_elmo tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.log.level", "ERROR")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    layer = random_tiny_layer(seed=5, scale=0.3)
    options_file, weight_file = str(folder / "options.json"), str(folder / "weights.hdf5")
    layer.save_original(options_file, weight_file)
    return options_file, weight_file


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """{layers: {line number: array}} from embed_file on the kept lines."""
    folder = tmp_path_factory.mktemp("reference")
    src = folder / "kept.txt"
    src.write_text("\n".join(LINES[k] for k in KEPT) + "\n", encoding="utf-8")
    options_file, weight_file = tiny_model
    out = {}
    for layers in ("all", "top", "average"):
        path = folder / f"{layers}.hdf5"
        embed_lib.embed_file(
            str(src), str(path), options_file, weight_file, layers=layers, batch_size=32
        )
        with h5py.File(path, "r") as f:
            out[layers] = {KEPT[int(name)]: f[name][...] for name in f if name.isdigit()}
    return out


def source_of(tiny_model):
    from keras_elmo.checkpoints.model_source import ModelSource

    return ModelSource(options_file=tiny_model[0], weight_file=tiny_model[1])


@pytest.fixture(scope="module")
def raw_rows(spark, tiny_model):
    """Every output of the raw-text form, in one Spark job (rows by line number)."""
    from keras_elmo.integrations.spark import embed_column

    df = spark.createDataFrame(list(enumerate(LINES)), "index long, text string").repartition(3)
    assert df.rdd.getNumPartitions() == 3
    common = {"source": source_of(tiny_model), "handle_invalid": "keep", "id_col": "index"}
    out = embed_column(df, "text", "top", layers="top", sentence_col="top_sentence", **common)
    out = embed_column(out, "text", "average", layers="average", error_col="e2", **common)
    out = embed_column(
        out, "text", "all", layers="all", sentence_col="all_sentence", error_col="e3", **common
    )
    return {row["index"]: row.asDict() for row in out.collect()}


def as_array(value):
    return np.asarray(value, dtype=np.float32)


@pytest.mark.parametrize("layers", ["top", "average", "all"])
def test_raw_text_equals_embed(raw_rows, reference, layers):
    assert sorted(raw_rows) == list(range(400))
    for k in KEPT:
        assert_same_up_to_path(
            as_array(raw_rows[k][layers]), reference[layers][k], err_msg=f"line {k}"
        )
    assert raw_rows[LONG_AT][layers] is not None and len(raw_rows[LONG_AT]["top"]) == 300


def test_sentence_vector_is_the_token_mean(raw_rows, reference):
    for layers, column in (("top", "top_sentence"), ("all", "all_sentence")):
        for k in KEPT:
            want = reference[layers][k].mean(axis=-2)
            assert_same_up_to_path(as_array(raw_rows[k][column]), want, err_msg=f"line {k}")
    assert as_array(raw_rows[0]["all_sentence"]).shape == (3, 12)


def test_the_empty_line_is_flagged_not_embedded(raw_rows):
    row = raw_rows[EMPTY_AT]
    assert row["elmo_error"] == f"row index={EMPTY_AT}: the text is empty (no tokens)"
    assert row["top"] is None and row["all"] is None and row["top_sentence"] is None
    assert all(raw_rows[k]["elmo_error"] is None for k in KEPT)


def test_token_column_equals_raw_form(spark, tiny_model, raw_rows):
    from keras_elmo.integrations.spark import embed_column

    rows = [(k, LINES[k].split()) for k in KEPT]
    df = spark.createDataFrame(rows, "index long, tokens array<string>").repartition(2)
    source = source_of(tiny_model)
    out = embed_column(df, "tokens", "top", source, layers="top")
    for name in ("word_emb", "lstm_outputs2", "elmo"):
        out = embed_column(out, "tokens", name, source, layers=name)
    got = {row["index"]: row for row in out.collect()}
    assert sorted(got) == KEPT
    for k in KEPT:
        top = as_array(got[k]["top"])
        assert_same_up_to_path(top, as_array(raw_rows[k]["top"]), err_msg=f"line {k}")
        # TF Hub's names: lstm_outputs2 is the top layer; word_emb is half of layer 0 of
        # "all" (which holds the token vector twice); elmo the model's scalar mix.
        assert_same_up_to_path(as_array(got[k]["lstm_outputs2"]), top)
        all_layers = as_array(raw_rows[k]["all"])
        assert_same_up_to_path(as_array(got[k]["word_emb"]), all_layers[0][:, :6])
        # The untrained mix: equal weights (softmax of zeros), gamma 1 -> the average.
        assert_same_up_to_path(as_array(got[k]["elmo"]), as_array(raw_rows[k]["average"]))


def test_bad_rows_error_names_the_row(spark, tiny_model):
    from pyspark.errors import PythonException

    from keras_elmo.integrations import spark_cli
    from keras_elmo.integrations.spark import embed_column

    df = spark.createDataFrame([(7, "a fine line"), (8, None)], "id long, text string")
    with pytest.raises(PythonException) as info:
        embed_column(df, "text", "v", source_of(tiny_model), id_col="id").collect()
    assert spark_cli.executor_error(info.value) == (
        "row id=8 of column 'text': the text is null (handle_invalid='skip' drops such "
        "rows, 'keep' flags them)."
    )
    # Nothing from TensorFlow: the row is refused before any model work.
    assert "tensorflow" not in str(info.value).lower()


def test_binary_and_over_limit_rows_are_flagged(spark, tiny_model):
    from keras_elmo.integrations.spark import embed_column

    rows = [(1, b"caf\xc3\xa9 ok"), (2, b"caf\xe9 latin-1"), (3, b" ".join([b"w"] * 60))]
    df = spark.createDataFrame(rows, "id long, text binary").coalesce(1)
    out = embed_column(
        df,
        "text",
        "v",
        source_of(tiny_model),
        layers="top",
        max_tokens=50,
        handle_invalid="keep",
        id_col="id",
    )
    got = {row["id"]: row for row in out.collect()}
    assert got[1]["elmo_error"] is None and as_array(got[1]["v"]).shape == (2, 12)
    assert got[2]["v"] is None
    assert got[2]["elmo_error"] == (
        "row id=2: the text is not valid UTF-8 (byte 3: invalid continuation byte)"
    )
    assert got[3]["elmo_error"] == "row id=3: 60 tokens, over the limit max_tokens=50"
    skipped = embed_column(
        df, "text", "v", source_of(tiny_model), max_tokens=50, handle_invalid="skip"
    )
    assert sorted(row["id"] for row in skipped.collect()) == [1]


def test_transformer_in_a_pipeline(spark, tiny_model, raw_rows, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    from keras_elmo.integrations.spark import ElmoEmbedder

    embedder = ElmoEmbedder(inputCol="text", outputCol="v", layers="top")
    embedder.setOptionsFile(tiny_model[0]).setWeightFile(tiny_model[1]).setSentenceCol("s")
    assert embedder.getLayers() == "top" and embedder.getSentenceCol() == "s"
    df = spark.createDataFrame([(k, LINES[k]) for k in KEPT[:20]], "index long, text string")
    model = Pipeline(stages=[embedder]).fit(df)
    model.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    got = {row["index"]: row for row in loaded.transform(df).collect()}
    assert sorted(got) == KEPT[:20]
    for k in KEPT[:20]:
        assert_same_up_to_path(as_array(got[k]["v"]), as_array(raw_rows[k]["top"]))
        assert as_array(got[k]["s"]).shape == (12,)


def read_output_dir(folder):
    rows = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".parquet"):
            for index, tokens, array in parquet.read_vectors(os.path.join(folder, name)):
                assert index not in rows, f"line {index} twice"
                rows[index] = (tokens, array)
    return rows


def test_spark_embed_killed_and_rerun_equals_one_run(spark, tmp_path):
    """A real kill (the whole process group: driver JVM and Python workers)
    mid-way, then the same command again: the rerun finishes the missing
    partitions and the output equals an uninterrupted run's."""
    from keras_elmo.integrations.spark import embed_files

    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    options = ["--model", SHIPPED, "--top", "--handle-invalid", "keep", "--partitions", "6"]
    whole = tmp_path / "whole"
    result = embed_files(
        spark, str(src), str(whole), SHIPPED, partitions=6, layers="top", handle_invalid="keep"
    )
    assert result["rows"] == 400 and result["skipped"] == 0
    n = result["partitions"]
    assert n >= 6
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "keras_elmo",
        "spark-embed",
        str(src),
        str(out),
        *options,
        "--master",
        "local[1]",
        "--quiet",
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 400
    while not (out / "part-00000.parquet").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no partition finished in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(n for n in os.listdir(out) if n.endswith(".parquet"))
    assert 1 <= len(done) < n, done
    assert not (out / "_SUCCESS").exists()
    for name in done:  # every Parquet file under OUTPUT is whole
        assert parquet.is_parquet(out / name)
    rerun = subprocess.run(command[:-1], env=env, cwd=tmp_path, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    assert f"({len(done)} done before)" in rerun.stdout.decode()
    assert not (out / "_temporary").exists()

    got, want = read_output_dir(out), read_output_dir(whole)
    assert sorted(got) == sorted(want) == list(range(400))
    for k in range(400):
        assert got[k][0] == want[k][0]
        if k == EMPTY_AT:
            assert got[k][0] is None
            continue
        # Same partitions and batches, other processes: the path tolerance.
        assert_same_up_to_path(got[k][1], want[k][1], err_msg=f"line {k}")
    # And the embed command's Parquet output on the same lines (the shipped model).
    kept = tmp_path / "kept.txt"
    kept.write_text("\n".join(LINES[k] for k in KEPT) + "\n", encoding="utf-8")
    embed_lib.embed_file(
        str(kept), str(tmp_path / "e.parquet"), source=SHIPPED, layers="top", file_format="parquet"
    )
    for index, tokens, array in parquet.read_vectors(tmp_path / "e.parquet"):
        assert got[KEPT[index]][0] == tokens
        assert_same_up_to_path(got[KEPT[index]][1], array, err_msg=f"line {KEPT[index]}")


def test_spark_embed_refuses_another_job_and_other_folders(tmp_path, capsys):
    """Cheap checks, before any JVM: the command's exit 2 lines."""
    import json

    from keras_elmo.cli import main
    from keras_elmo.errors import InputError
    from keras_elmo.integrations import spark as spark_lib

    assert main(["spark-embed", str(tmp_path / "missing.txt"), str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not a spark-embed output"):
        spark_lib.check_output_dir(str(other))
    run = tmp_path / "run"
    run.mkdir()
    job = {"kind": "keras_elmo.spark_embed", "partitions": 4, "options": {"layers": "top"}}
    (run / spark_lib.JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
    (run / "part-00001.parquet").write_bytes(b"PAR1PAR1")
    assert spark_lib.check_output_dir(str(run), job) == ["part-00001.parquet"]
    with pytest.raises(InputError, match="unfinished run with a different partitions"):
        spark_lib.check_output_dir(str(run), {**job, "partitions": 5})
    (run / spark_lib.SUCCESS_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match="holds a finished spark-embed run"):
        spark_lib.check_output_dir(str(run), job)
    notes = str(other / "notes.txt")
    assert main(["spark-embed", notes, notes]) == 2
    assert f"output {notes} exists and is not a directory." in capsys.readouterr().err


def test_spark_reads_the_embed_parquet_output(spark, tiny_model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES[k] for k in KEPT[:30]) + "\n", encoding="utf-8")
    out = tmp_path / "e.parquet"
    embed_lib.embed_file(str(src), str(out), *tiny_model, layers="all", file_format="parquet")
    back = spark.read.parquet(str(out))
    assert back.schema.simpleString() == (
        "struct<index:bigint,tokens:array<string>,vectors:array<array<array<float>>>>"
    )
    rows = {row["index"]: row for row in back.collect()}
    assert sorted(rows) == list(range(30))
    for index, tokens, array in parquet.read_vectors(out):
        assert rows[index]["tokens"] == tokens
        got = as_array(rows[index]["vectors"])
        assert got.shape == (3, len(tokens), 12)
        # float32 through the JVM and back: the very numbers.
        np.testing.assert_array_equal(got, array)
