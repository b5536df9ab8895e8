"""`keras-elmo embed --format parquet`: one row per line, the HDF5 output's shapes and numbers.

A tiny random model (saved with save_original); every check reads the
Parquet file back with pyarrow or pandas and compares it with the HDF5
output of the same job (same batches: bitwise; other batches: the path
tolerance of support/tolerance.py).
"""

import functools
import os

import h5py
import numpy as np
import pytest
from support.tiny_model import random_tiny_layer
from support.tolerance import assert_same_up_to_path

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from keras_elmo.cli import main
from keras_elmo.errors import InputError
from keras_elmo.jobs import embed_file as embed_lib
from keras_elmo.jobs import output, parquet, parts

LINES = [
    "the cat sat on the mat",
    "a",
    "Zürich straße café naïve",
    "the cat sat on the mat",
    "dog ran far away quickly big small red green blue and then some more words here",
    "日本語 の 文",
    "x y",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    layer = random_tiny_layer(seed=11)
    options_file, weight_file = folder / "options.json", folder / "weights.hdf5"
    layer.save_original(str(options_file), str(weight_file))
    return str(options_file), str(weight_file)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def run_embed(tiny_model, src, out, **kwargs):
    options_file, weight_file = tiny_model
    return embed_lib.embed_file(
        str(src), str(out), options_file=options_file, weight_file=weight_file, **kwargs
    )


def hdf5_arrays(path):
    with h5py.File(path, "r") as f:
        return {int(name): f[name][...] for name in f if name != "sentence_to_index"}


@pytest.mark.parametrize("layers", output.LAYER_CHOICES)
def test_parquet_equals_hdf5_bitwise(tiny_model, corpus, tmp_path, layers):
    run_embed(tiny_model, corpus, tmp_path / "out.hdf5", layers=layers, batch_size=3)
    run_embed(
        tiny_model,
        corpus,
        tmp_path / "out.parquet",
        layers=layers,
        batch_size=3,
        file_format="parquet",
    )
    want = hdf5_arrays(tmp_path / "out.hdf5")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("vectors").type == parquet.vectors_type(layers)
    assert table.column("index").to_pylist() == list(range(len(LINES)))
    assert table.column("tokens").to_pylist() == [line.split() for line in LINES]
    meta = table.schema.metadata
    assert meta[b"keras_elmo.layers"] == layers.encode()
    assert meta[b"keras_elmo.sentences"] == str(len(LINES)).encode()
    assert meta[b"keras_elmo.dim"] == b"12"
    rows = list(parquet.read_vectors(tmp_path / "out.parquet"))
    assert [index for index, _, _ in rows] == list(range(len(LINES)))
    for index, tokens, array in rows:
        expected_shape = (3, len(tokens), 12) if layers == "all" else (len(tokens), 12)
        assert array.shape == expected_shape == want[index].shape
        assert array.dtype == np.float32
        # The same job, the same batches: the very numbers of the HDF5 output.
        np.testing.assert_array_equal(array, want[index])


def test_pandas_reads_the_hdf5_shapes(tiny_model, corpus, tmp_path):
    pd = pytest.importorskip("pandas")
    run_embed(tiny_model, corpus, tmp_path / "out.hdf5", layers="all")
    run_embed(tiny_model, corpus, tmp_path / "out.parquet", layers="all", file_format="parquet")
    want = hdf5_arrays(tmp_path / "out.hdf5")
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert list(frame.columns) == ["index", "tokens", "vectors"]
    for index, cell in zip(frame["index"], frame["vectors"]):
        # pandas gives nested object arrays; np.stack twice makes the (3, T, 2P) array.
        array = np.stack([np.stack(layer) for layer in cell]).astype(np.float32)
        np.testing.assert_array_equal(array, want[index])


def test_other_batching_within_path_tolerance(tiny_model, corpus, tmp_path):
    run_embed(
        tiny_model,
        corpus,
        tmp_path / "a.parquet",
        layers="top",
        batch_size=1,
        file_format="parquet",
    )
    run_embed(
        tiny_model,
        corpus,
        tmp_path / "b.parquet",
        layers="top",
        batch_size=64,
        file_format="parquet",
    )
    a = {i: v for i, _, v in parquet.read_vectors(tmp_path / "a.parquet")}
    b = {i: v for i, _, v in parquet.read_vectors(tmp_path / "b.parquet")}
    assert sorted(a) == sorted(b) == list(range(len(LINES)))
    for index in a:
        assert_same_up_to_path(a[index], b[index], err_msg=f"line {index}")


def test_interrupted_parquet_run_resumes(tiny_model, corpus, tmp_path, monkeypatch):
    target = tmp_path / "out.parquet"
    run_embed(
        tiny_model,
        corpus,
        tmp_path / "whole.parquet",
        layers="average",
        batch_size=2,
        file_format="parquet",
    )
    real = output.embed_batch
    calls = []

    def interrupted(run, token_lists, layers):
        calls.append(len(token_lists))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(run, token_lists, layers)

    job = functools.partial(
        run_embed,
        tiny_model,
        corpus,
        target,
        layers="average",
        batch_size=2,
        file_format="parquet",
    )
    monkeypatch.setattr(output, "embed_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        job(flush_seconds=0)
    # No Parquet file at the output path, the finished batches kept.
    assert not target.exists()
    assert len(list((tmp_path / "out.parquet.partial").glob("part-*.hdf5"))) == 2
    monkeypatch.setattr(output, "embed_batch", real)
    job(resume=True)
    assert not (tmp_path / "out.parquet.partial").exists()
    got = list(parquet.read_vectors(target))
    want = list(parquet.read_vectors(tmp_path / "whole.parquet"))
    assert [(i, t) for i, t, _ in got] == [(i, t) for i, t, _ in want]
    for (_, _, a), (_, _, b) in zip(got, want):
        # Same batches, the same process: bitwise.
        np.testing.assert_array_equal(a, b)


def test_failed_merge_leaves_the_old_output(tiny_model, corpus, tmp_path, monkeypatch):
    target = tmp_path / "out.parquet"
    run_embed(tiny_model, corpus, target, layers="top", file_format="parquet")
    before = target.read_bytes()

    def broken(self, index, tokens, array):
        if index == 4:
            raise OSError("disk full (simulated)")
        return real_add(self, index, tokens, array)

    real_add = parquet.RowWriter.add
    monkeypatch.setattr(parquet.RowWriter, "add", broken)
    with pytest.raises(OSError, match="simulated"):
        run_embed(tiny_model, corpus, target, layers="top", file_format="parquet")
    # The earlier, complete output is untouched; nothing half-written beside it.
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out.parquet")) == [
        "out.parquet",
        "out.parquet.partial",
    ]
    assert not list((tmp_path / "out.parquet.partial").glob("*.parquet"))


def test_existing_other_file_is_refused(tiny_model, corpus, tmp_path):
    target = tmp_path / "notes.parquet"
    target.write_text("my notes\n", encoding="utf-8")
    with pytest.raises(InputError, match="not an HDF5 or Parquet file"):
        run_embed(tiny_model, corpus, target, file_format="parquet")
    assert target.read_text(encoding="utf-8") == "my notes\n"
    assert not parquet.is_parquet(target)


def test_unknown_format_is_refused(tiny_model, corpus, tmp_path):
    with pytest.raises(InputError, match="format must be one of"):
        run_embed(tiny_model, corpus, tmp_path / "out.csv", file_format="csv")


def test_cli_format_parquet(tiny_model, corpus, tmp_path, capsys):
    options_file, weight_file = tiny_model
    out = tmp_path / "cli.parquet"
    args = [
        "embed",
        str(corpus),
        str(out),
        "--options-file",
        options_file,
        "--weight-file",
        weight_file,
        "--quiet",
        "--format",
        "parquet",
        "--top",
    ]
    assert main(args) == 0
    assert parquet.is_parquet(out)
    table = pq.read_table(out)
    assert table.num_rows == len(LINES)
    assert table.schema.field("vectors").type == pa.list_(pa.list_(pa.float32()))
    with pytest.raises(SystemExit) as exit_info:
        main([*args[:-3], "--format", "csv"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'csv'" in capsys.readouterr().err
    assert not os.path.exists(parts.partial_dir(out))


@pytest.mark.slow
def test_beam_embed_parquet_equals_embed(tiny_model, corpus, tmp_path):
    beam = pytest.importorskip("keras_elmo.integrations.beam")
    from keras_elmo.checkpoints.model_source import ModelSource

    run_embed(tiny_model, corpus, tmp_path / "e.parquet", layers="all", file_format="parquet")
    want = {
        index: (tokens, array)
        for index, tokens, array in parquet.read_vectors(tmp_path / "e.parquet")
    }
    source = ModelSource(options_file=tiny_model[0], weight_file=tiny_model[1])
    out = tmp_path / "beam"
    manifest = beam.embed_corpus(
        [str(corpus)],
        str(out),
        source,
        file_format="parquet",
        layers="all",
        batch_size=3,
        pipeline_options=["--runner=DirectRunner"],
    )
    assert manifest["complete"] and manifest["format"] == "parquet"
    assert all(name.endswith(".parquet") for name in manifest["shards"])
    got = {line: array for _, line, array in beam.read_embeddings(str(out))}
    assert sorted(got) == sorted(want) == list(range(len(LINES)))
    for line, (_, array) in want.items():
        assert_same_up_to_path(got[line], array, err_msg=f"line {line}")
    # The shards are one table for pyarrow: input_index, index, tokens, vectors.
    import pyarrow.dataset as ds

    shards = [str(out / name) for name in manifest["shards"]]
    table = ds.dataset(shards, format="parquet").to_table()
    assert table.column_names == ["input_index", "index", "tokens", "vectors"]
    rows = {row["index"]: row["tokens"] for row in table.select(["index", "tokens"]).to_pylist()}
    assert rows == {line: tokens for line, (tokens, _) in want.items()}
