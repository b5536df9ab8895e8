"""`keras-elmo embed`: the fixture through the CLI, output layout, bad input files."""

import json

import h5py
import numpy as np
import pytest
from support.bilm_fixture import allclose, load_fixture
from support.tolerance import assert_same_up_to_path

from keras_elmo.cli import main


def run_embed(fixture_dir, tmp_path, lines, *flags, raw=None):
    src = tmp_path / "in.txt"
    if raw is not None:
        src.write_bytes(raw)
    else:
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.hdf5"
    code = main(
        [
            "embed",
            str(src),
            str(out),
            "--options-file",
            str(fixture_dir / "options.json"),
            "--weight-file",
            str(fixture_dir / "lm_weights.hdf5"),
            "--quiet",
            *flags,
        ]
    )
    return code, out


def test_fixture_through_cli_all_stateful(fixture_dir, tmp_path):
    sentences, expected = load_fixture(fixture_dir)
    # Batch order: s[0][0], s[1][0], s[2][0], s[0][1], ...
    lines = [sentences[k][i] for i in range(10) for k in range(3)]
    code, out = run_embed(fixture_dir, tmp_path, lines, "--all", "--stateful", "--batch-size", "3")
    assert code == 0
    with h5py.File(out, "r") as f:
        index = json.loads(f["sentence_to_index"][0])
        assert len(index) == 30
        for n, line in enumerate(lines):
            i, k = divmod(n, 3)
            data = f[str(n)][...]
            assert data.shape == (3, len(line.split()), 32)
            assert index[line] == str(n)
            np.testing.assert_array_equal(data[0, :, :16], data[0, :, 16:])  # token duplicated
            assert allclose(data[2], expected[k][i]), (
                n,
                np.abs(data[2] - expected[k][i]).max(),
            )


def test_top_and_average_layouts_and_sorted_batching(fixture_dir, tmp_path):
    lines = ["a b c", "one", "x y z w v u", "hello there"]
    code, out = run_embed(fixture_dir, tmp_path, lines, "--all", "--batch-size", "2")
    assert code == 0
    with h5py.File(out, "r") as f:
        all_layers = {n: f[str(n)][...] for n in range(4)}
    for flag, reduce in (("--top", lambda a: a[-1]), ("--average", lambda a: a.mean(axis=0))):
        code, out = run_embed(fixture_dir, tmp_path, lines, flag, "--batch-size", "3")
        assert code == 0
        with h5py.File(out, "r") as f:
            for n, line in enumerate(lines):
                got = f[str(n)][...]
                assert got.shape == (len(line.split()), 32)
                # Different batch sizes and sort orders: stateless, so the same vectors.
                assert_same_up_to_path(got, reduce(all_layers[n]))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"fine line\n\nafter empty\n", "line 2 is empty"),
        (b"ok\nbad \xff byte\n", "line 2 is not valid UTF-8"),
        (b"", "no sentences"),
    ],
)
def test_bad_input_files_are_clear_errors(fixture_dir, tmp_path, capsys, content, message):
    code, out = run_embed(fixture_dir, tmp_path, None, raw=content)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_model_files_are_clear_errors(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("a b\n")
    code = main(["embed", str(src), str(tmp_path / "o.hdf5"), "--options-file", "x.json"])
    assert code == 2 and "both --options-file and --weight-file" in capsys.readouterr().err
    code = main(
        [
            "embed",
            str(src),
            str(tmp_path / "o.hdf5"),
            "--options-file",
            str(tmp_path / "none.json"),
            "--weight-file",
            str(tmp_path / "none.hdf5"),
        ]
    )
    assert code == 2 and "options file not found" in capsys.readouterr().err


def test_matmul_dtype_flag(fixture_dir, tmp_path):
    """--matmul-dtype bfloat16 reaches the layer: the top layer moves by a
    bfloat16 rounding (not 0, not more than 2**-5 relative) against the fixture;
    float32 stays exact."""
    sentences, expected = load_fixture(fixture_dir)
    lines = [sentences[k][i] for i in range(10) for k in range(3)]
    want = np.concatenate([expected[k][i] for i in range(10) for k in range(3)])
    got = {}
    for dtype in ("float32", "bfloat16"):
        folder = tmp_path / dtype
        folder.mkdir()
        flags = ("--top", "--stateful", "--batch-size", "3", "--matmul-dtype", dtype)
        code, out = run_embed(fixture_dir, folder, lines, *flags)
        assert code == 0
        with h5py.File(out, "r") as f:
            got[dtype] = np.concatenate([f[str(n)][...] for n in range(len(lines))])
    assert allclose(got["float32"], want)
    rel = np.linalg.norm(got["bfloat16"] - want) / np.linalg.norm(want)
    assert 2.0**-16 < rel < 2.0**-5, rel


@pytest.mark.parametrize("command", ["embed", "beam-embed"])
def test_old_matmul_dtype_flag_is_an_alias(command):
    from keras_elmo.cli import build_parser

    parser = build_parser()
    if command == "embed":
        base = ["in.txt", "out.hdf5"]
    else:
        base = ["--input", "in*.txt", "--output-dir", "out"]
    for flag in ("--matmul-dtype", "--lstm-matmul-dtype"):
        args = parser.parse_args([command, *base, flag, "bfloat16"])
        assert args.matmul_dtype == "bfloat16", flag
