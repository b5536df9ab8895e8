"""`keras-elmo embed` loses nothing: input never overwritten, atomic output, resume after a kill.

The kill tests run the real command in a subprocess with a tiny random model
(saved with save_original), kill it once OUTPUT.partial/ shows committed
work, resume, and compare with an uninterrupted run.
"""

import json
import os
import signal

import h5py
import pytest
from support.embed_job import (
    assert_same_output,
    committed_parts,
    embed_args,
    read_output,
    reference_job,
    save_tiny_model,
    start_embed,
    wait_for_parts,
    write_sentences,
)
from support.tiny_model import TINY_OPTIONS

from keras_elmo.cli import main
from keras_elmo.jobs import embed_file as embed_lib
from keras_elmo.jobs import parts, reader
from keras_elmo.layers.elmo_layer import ElmoLayer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


# ------------------------------------------------------------ never over an input


def test_output_is_the_input_is_refused_and_the_input_kept(tiny_model, tmp_path, capsys):
    src = tmp_path / "x.txt"
    write_sentences(src, 5)
    before = src.read_bytes()
    os.symlink(src, tmp_path / "link.txt")
    os.link(src, tmp_path / "hard.txt")
    for out in (src, tmp_path / "link.txt", tmp_path / "hard.txt", tmp_path / "." / "x.txt"):
        code = main(embed_args(tiny_model, src, out))
        err = capsys.readouterr().err
        assert code == 2
        assert "refusing to write over an input" in err and err.count("\n") == 1
        assert src.read_bytes() == before
    # The model files are inputs too.
    weights_before = tiny_model[1].read_bytes()
    assert main(embed_args(tiny_model, src, tiny_model[1])) == 2
    assert tiny_model[1].read_bytes() == weights_before
    assert not list(tmp_path.glob("*.partial"))


@pytest.fixture
def no_model(monkeypatch):
    """Fail if the model is loaded: output problems must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(ElmoLayer, "from_original", refuse)


@pytest.mark.parametrize(
    "make_out, message",
    [
        (lambda d: d, "is a directory"),
        (lambda d: d / "missing" / "out.hdf5", "does not exist"),
    ],
)
def test_output_path_problems_are_one_line_before_the_model(
    tiny_model, tmp_path, capsys, no_model, make_out, message
):
    src = tmp_path / "in.txt"
    write_sentences(src, 3)
    code = main(embed_args(tiny_model, src, make_out(tmp_path)))
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_output_folder_not_writable(tiny_model, tmp_path, capsys, no_model, monkeypatch):
    src = tmp_path / "in.txt"
    write_sentences(src, 3)
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # Root ignores permission bits: answer os.access as an ordinary user would.
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
        )
    try:
        code = main(embed_args(tiny_model, src, folder / "out.hdf5"))
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and err.strip().endswith(f"the folder {folder} is not writable."), err
    assert err.count("\n") == 1
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------ line endings, BOM


def test_iter_lines_against_a_reference_split():
    import io

    contents = [
        b"",
        b"a",
        b"a\n",
        b"a\r\nb\r\n",
        b"a\rb\rc",
        b"a\r\r\nb\n\rc\r",
        b"\xef\xbb\xbfa b\r\nc",
        b"\xef\xbb\xbf",
        b"x\xef\xbb\xbf\n",  # a BOM that is not at the start stays
    ]
    for content in contents:
        body = content[3:] if content.startswith(b"\xef\xbb\xbf") else content
        # Reference: normalise the three terminators to \n, split, drop the tail.
        want = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if want[-1] == b"":
            want.pop()
        for block in (1, 2, 3, 7, 1 << 16):
            got = list(reader.iter_lines(io.BytesIO(content), block_size=block))
            assert got == want, (content, block)


def test_overlong_line_is_an_error(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"ok\n" + b"x" * (reader.MAX_LINE_BYTES + 10) + b"\nok\n")
    with pytest.raises(ValueError, match=r"line 2 is over 1048576 bytes"):
        list(reader.read_sentences(path))


def test_bom_and_line_endings_give_the_plain_file_vectors(tiny_model, tmp_path):
    lines = ["The cat sat", "on the mat .", "a b"]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(embed_args(tiny_model, plain, tmp_path / "plain.hdf5")) == 0
    variants = {
        "bom_crlf": b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n",
        "cr": "\r".join(lines).encode(),
        "mixed": f"{lines[0]}\r{lines[1]}\r\n{lines[2]}\n".encode(),
    }
    for name, content in variants.items():
        src = tmp_path / f"{name}.txt"
        src.write_bytes(content)
        assert main(embed_args(tiny_model, src, tmp_path / f"{name}.hdf5")) == 0
        assert_same_output(tmp_path / f"{name}.hdf5", tmp_path / "plain.hdf5")


# ------------------------------------------------------------ resume


KILL_LINES = 800
KILL_FLAGS = ("--batch-size", "4", "--flush-seconds", "0")


@pytest.fixture(scope="module")
def kill_job(tiny_model, tmp_path_factory):
    """An input of 200 batches and its uninterrupted output."""
    return reference_job(tiny_model, tmp_path_factory.mktemp("kill_job"), KILL_LINES, KILL_FLAGS)


@pytest.mark.slow  # the real command in a subprocess, killed and resumed
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_model, kill_job, tmp_path, sig):
    src, reference = kill_job
    n_lines, flags = KILL_LINES, KILL_FLAGS
    out = tmp_path / "out.hdf5"
    with h5py.File(out, "w") as f:
        f.create_dataset("old", data=[1.0])
    old_bytes = out.read_bytes()
    partial = tmp_path / "out.hdf5.partial"
    proc = start_embed(tiny_model, src, out, *flags)
    try:
        wait_for_parts(proc, partial, 3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, err
        assert "--resume" in err.strip().splitlines()[-1]
    # The target still holds the old file; every committed part is readable.
    assert out.read_bytes() == old_bytes
    saved = set()
    for part in committed_parts(partial):
        with h5py.File(part, "r") as f:
            assert f.attrs["complete"]
            names = {int(name) for name in f}
            assert len(names) % 4 == 0  # whole batches only
            saved |= names
    assert 12 <= len(saved) < n_lines

    assert main(embed_args(tiny_model, src, out, *flags)) == 2  # no --resume: refused
    assert out.read_bytes() == old_bytes
    assert main(embed_args(tiny_model, src, out, *flags, "--resume")) == 0
    assert not partial.exists()
    assert_same_output(out, reference)


def test_resume_refuses_a_different_job_and_stateful(tiny_model, tmp_path, capsys):
    src = tmp_path / "in.txt"
    write_sentences(src, 8)
    out = tmp_path / "out.hdf5"
    job = {"format": parts.PARTIAL_FORMAT, "layers": "all"}
    partial = tmp_path / "out.hdf5.partial"
    partial.mkdir()
    (partial / "job.json").write_text(json.dumps(job))
    assert main(embed_args(tiny_model, src, out, "--resume")) == 2
    assert "the input changed since the interrupted run" in capsys.readouterr().err
    assert main(embed_args(tiny_model, src, out, "--stateful", "--resume")) == 2
    assert "a --stateful run cannot resume" in capsys.readouterr().err
    assert not out.exists()


def test_resume_without_a_partial_run_starts_from_the_beginning(tiny_model, tmp_path):
    src = tmp_path / "in.txt"
    write_sentences(src, 6)
    assert main(embed_args(tiny_model, src, tmp_path / "a.hdf5")) == 0
    assert main(embed_args(tiny_model, src, tmp_path / "b.hdf5", "--resume")) == 0
    assert_same_output(tmp_path / "b.hdf5", tmp_path / "a.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hdf5", "b.hdf5", "in.txt"]


def test_library_call_takes_its_options_as_keywords(tiny_model, tmp_path):
    """embed_file's options are keyword-only: a positional one is refused, not misread
    (0.3 reordered them to match beam.embed_corpus)."""
    options_file, weight_file = tiny_model
    src = tmp_path / "in.txt"
    lines = write_sentences(src, 3)
    with pytest.raises(TypeError, match="positional"):
        embed_lib.embed_file(src, tmp_path / "x.hdf5", options_file, weight_file, "top")
    assert not (tmp_path / "x.hdf5").exists()
    n = embed_lib.embed_file(
        src, tmp_path / "top.hdf5", options_file, weight_file, layers="top", batch_size=2
    )
    assert n == len(lines)
    _, data, _ = read_output(tmp_path / "top.hdf5")
    # --top: one (T, 2P) array per sentence, T = its token count.
    assert [data[str(k)].shape for k in range(3)] == [
        (len(line.split()), 2 * TINY_OPTIONS["lstm"]["projection_dim"]) for line in lines
    ]
