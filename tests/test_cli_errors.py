"""User errors in the command line: one line naming the problem, exit 2, and
before TensorFlow is imported wherever no model is needed; Ctrl-C at any
moment: one line, exit 130, nothing left behind.

Each case runs `keras-elmo` in a fresh interpreter (as the console script:
`sys.argv[0]` is "keras-elmo") and reports whether TensorFlow got imported.
The Ctrl-C cases send a real SIGINT to that process at a chosen point (while
`import tensorflow` runs, after the first embedded batch, while the export
is written), so they do not depend on timing.
"""

import os
import subprocess
import sys

import h5py
import pytest
from support.bilm_fixture import FIXTURE_DIR as FIXTURES
from support.paths import REPO
from support.processes import run_script_with_report

from keras_elmo import cli
from keras_elmo.jobs import embed_file, parts, reader

RUN_CLI = """
import json, os, signal, sys
sys.argv[0] = "keras-elmo"
hook = os.environ.get("SIGINT_AT")


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)


if hook == "tensorflow-import":
    import importlib.abc

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow.python":  # halfway through `import tensorflow`
                sys.meta_path.remove(self)
                interrupt()
            return None

    sys.meta_path.insert(0, Finder())
from keras_elmo.cli import main

if hook == "embed-batch":
    from keras_elmo.jobs import parts

    write_batch = parts.PartStore.write_batch

    def first_batch_then_interrupt(self, *args, **kwargs):
        write_batch(self, *args, **kwargs)
        interrupt()

    parts.PartStore.write_batch = first_batch_then_interrupt
if hook == "export-write":
    from keras_elmo.serving import export

    batching_parameters = export.batching_parameters

    def interrupted(*args, **kwargs):  # called after the SavedModel is saved
        interrupt()
        return batching_parameters(*args, **kwargs)

    export.batching_parameters = interrupted
try:
    status = main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
with open(os.environ["CLI_REPORT"], "w") as f:
    json.dump({"tensorflow": "tensorflow" in sys.modules}, f)
sys.exit(status)
"""
MODEL = ["--options-file", FIXTURES / "options.json", "--weight-file", FIXTURES / "lm_weights.hdf5"]


def run_cli(tmp_path, *argv, sigint_at=None):
    """(exit status, stderr, TensorFlow imported?, seconds) of `keras-elmo ARGV`."""
    env = {"PYTHONPATH": str(REPO)}
    if sigint_at:
        env["SIGINT_AT"] = sigint_at
    proc, seconds, report = run_script_with_report(
        RUN_CLI, argv, tmp_path, cwd=tmp_path, env_extra=env
    )
    imported = report["tensorflow"] if report else None
    return proc.returncode, proc.stderr, imported, seconds


def assert_one_line_error(status, stderr, imported, *names):
    assert status == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-elmo "), stderr
    assert ": error: " in lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert imported is False, "TensorFlow was imported before the error"


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("The cat sat .\nHello !\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_missing_input_is_one_line_before_tensorflow(tmp_path):
    status, stderr, imported, seconds = run_cli(tmp_path, "embed", "missing.txt", "out.hdf5")
    assert_one_line_error(status, stderr, imported, "missing.txt", "not found")
    # Python's start-up and the checks only (no TensorFlow: about 0.2 s);
    # the bound leaves room for a loaded machine.
    assert seconds < 5, seconds
    assert not (tmp_path / "out.hdf5").exists()


@pytest.mark.slow
def test_a_directory_as_input_or_output_is_one_line(tmp_path, text):
    folder = tmp_path / "folder"
    folder.mkdir()
    status, stderr, imported, _ = run_cli(tmp_path, "embed", folder, "out.hdf5")
    assert_one_line_error(status, stderr, imported, folder, "is a directory")
    status, stderr, imported, _ = run_cli(tmp_path, "embed", text, folder)
    assert_one_line_error(status, stderr, imported, folder, "is a directory")


def test_an_unreadable_input_is_one_line(tmp_path, text, capsys, monkeypatch):
    # (As root every file is readable: the refusal of the open is simulated.)
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reader, "open", refuse, raising=False)
    assert cli.main(["embed", str(text), str(tmp_path / "out.hdf5")]) == 2
    err = capsys.readouterr().err
    assert err == f"keras-elmo embed: error: cannot read input {text}: Permission denied.\n"


@pytest.mark.slow
def test_an_existing_output_that_is_not_hdf5_is_refused_and_kept(tmp_path, text):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    status, stderr, imported, _ = run_cli(tmp_path, "embed", text, notes)
    assert_one_line_error(status, stderr, imported, notes, "not an HDF5 or Parquet file")
    assert notes.read_text() == "my notes\n"


def test_an_existing_hdf5_or_empty_output_may_be_replaced(tmp_path, text):
    old = tmp_path / "old.hdf5"
    with h5py.File(old, "w") as f:
        f["0"] = [1.0]
    assert embed_file.check_output_path(old, [text]) == str(old.resolve())
    empty = tmp_path / "empty.hdf5"
    empty.touch()
    assert embed_file.check_output_path(empty, [text]) == str(empty.resolve())
    # An HDF5 file with a user block: the signature at byte 512.
    padded = tmp_path / "padded.hdf5"
    with h5py.File(padded, "w", userblock_size=512) as f:
        f["0"] = [1.0]
    assert embed_file.check_output_path(padded, [text]) == str(padded.resolve())


@pytest.mark.slow
def test_an_interrupted_run_without_resume_is_refused_before_tensorflow(tmp_path, text):
    partial = tmp_path / "out.hdf5.partial"
    partial.mkdir()
    (partial / "job.json").write_text("{}")
    status, stderr, imported, _ = run_cli(tmp_path, "embed", text, tmp_path / "out.hdf5")
    assert_one_line_error(status, stderr, imported, partial, "--resume")


@pytest.mark.slow
def test_export_onto_a_file_or_an_existing_version_is_refused_first(tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("keep me\n")
    status, stderr, imported, _ = run_cli(tmp_path, "export", mine, *MODEL)
    assert_one_line_error(status, stderr, imported, mine, "not a directory")
    assert mine.read_text() == "keep me\n"
    (tmp_path / "exports" / "1").mkdir(parents=True)
    status, stderr, imported, _ = run_cli(
        tmp_path, "export", tmp_path / "exports", "--version", "1", *MODEL
    )
    assert_one_line_error(status, stderr, imported, tmp_path / "exports" / "1", "--version")
    status, stderr, imported, _ = run_cli(
        tmp_path, "export", tmp_path / "exports", "--keras-file", "none.keras"
    )
    assert_one_line_error(status, stderr, imported, "none.keras", "not found")


@pytest.mark.slow
def test_an_unknown_preset_suggests_the_closest_names(tmp_path, text):
    status, stderr, imported, _ = run_cli(
        tmp_path, "embed", text, "o.hdf5", "--model", "elmo-smal-en"
    )
    assert_one_line_error(status, stderr, imported, "'elmo-smal-en'", "keras-elmo presets")
    assert "did you mean 'elmo-small-en'" in stderr
    # Not the 49 names: the closest few.
    assert len(stderr) < 300 and "allennlp-original-5.5b-en" not in stderr
    status, stderr, imported, _ = run_cli(
        tmp_path,
        "beam-embed",
        "--input",
        text,
        "--output-dir",
        "out",
        "--model",
        "allenlp-small-en",
    )
    assert_one_line_error(status, stderr, imported, "did you mean 'allennlp-small-en'")


@pytest.mark.slow
def test_other_commands_check_their_files_first(tmp_path, text):
    status, stderr, imported, _ = run_cli(
        tmp_path, "train", text, "--vocab", "no-vocab.txt", "--output-dir", "out"
    )
    assert_one_line_error(status, stderr, imported, "no-vocab.txt")
    status, stderr, imported, _ = run_cli(tmp_path, "perplexity", text, "--model-dir", "no-dir")
    assert_one_line_error(status, stderr, imported, "no-dir")
    status, stderr, imported, _ = run_cli(
        tmp_path, "embed", text, "o.hdf5", "--options-file", "x.json", "--weight-file", "y.hdf5"
    )
    assert_one_line_error(status, stderr, imported, "x.json", "not found")


@pytest.mark.slow
def test_version_and_presets_answer_without_tensorflow(tmp_path, capsys):
    from keras_elmo import __version__
    from keras_elmo.checkpoints import presets

    proc = subprocess.run(
        [sys.executable, "-m", "keras_elmo.cli", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, f"keras-elmo {__version__}\n")
    status, stderr, imported, _ = run_cli(tmp_path, "presets")
    assert (status, stderr, imported) == (0, "", False)
    assert cli.main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(presets.PRESETS)


COMMANDS = ("embed", "export", "build-vocab", "train", "perplexity", "beam-embed", "presets")


def test_help_shows_the_defaults_and_no_docs_files(capsys):
    helps = {}
    for name in ("", *COMMANDS):
        with pytest.raises(SystemExit) as exit_:
            cli.build_parser().parse_args([name, "--help"] if name else ["--help"])
        assert exit_.value.code == 0
        helps[name] = " ".join(capsys.readouterr().out.split())
    assert set(COMMANDS) <= set(helps[""].replace(",", " ").replace("{", " ").split())
    assert "sentences per model call (default: 64)" in helps["embed"]
    for default in ("LSTM cell size (default: 1024)", "(default: 128)", "(default: 32)"):
        assert default in helps["train"]
    for name, text in helps.items():
        # A wheel has no docs/ folder; every help text stands on its own.
        assert "docs/" not in text and "docs:" not in text, name
    assert "--version" in helps[""]


# ---------------------------------------------------------------- Ctrl-C


def assert_interrupted(status, stderr, *expected_line_start):
    assert status == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(expected_line_start), lines[0]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_ctrl_c_while_tensorflow_loads_is_one_line_and_exit_130(tmp_path, text):
    out = tmp_path / "out.hdf5"
    status, stderr, _, _ = run_cli(
        tmp_path, "embed", text, out, *MODEL, sigint_at="tensorflow-import"
    )
    # No TensorFlow lines either (the quiet import had caught them).
    assert_interrupted(status, stderr, "keras-elmo embed: interrupted")
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "report.json"]


@pytest.mark.slow
def test_ctrl_c_during_embedding_keeps_the_finished_batches(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("".join(f"sentence number {i} .\n" for i in range(8)), encoding="utf-8")
    out = tmp_path / "out.hdf5"
    status, stderr, _, _ = run_cli(
        tmp_path,
        "embed",
        text,
        out,
        *MODEL,
        "--batch-size",
        "2",
        "--flush-seconds",
        "0",
        "--quiet",
        sigint_at="embed-batch",
    )
    partial = parts.partial_dir(out)
    assert_interrupted(
        status,
        stderr,
        f"keras-elmo embed: interrupted; finished batches are kept in {partial}/",
    )
    assert not out.exists()
    assert "part-000000.hdf5" in os.listdir(partial)


@pytest.mark.slow
def test_ctrl_c_during_export_leaves_nothing_behind(tmp_path):
    exports = tmp_path / "exports"
    status, stderr, _, _ = run_cli(tmp_path, "export", exports, *MODEL, sigint_at="export-write")
    assert_interrupted(status, stderr, "keras-elmo export: interrupted")
    assert os.listdir(exports) == []
