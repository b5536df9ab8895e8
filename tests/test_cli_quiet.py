"""The command line is fast and quiet: `--help` and argument errors never
import TensorFlow, TensorFlow's log lines are off unless `--verbose`, the
progress bar suits a log file, and `--quiet` prints nothing on success.

Each case runs the command in a fresh interpreter, as the `keras-elmo`
console script does (`sys.argv[0]` is "keras-elmo"), with stderr a pipe
(not a terminal) and without the TF_CPP_MIN_LOG_LEVEL the test session sets.
"""

import io
import os
import re
import subprocess
import sys

import h5py
import pytest
from support.paths import REPO
from support.processes import run_script_with_report

from keras_elmo.progress import progress_bar

# The console script's set-up, then a report of what got imported.
RUN_CLI = """
import json, os, sys
sys.argv[0] = "keras-elmo"
from keras_elmo.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
modules = {name: name in sys.modules for name in ("tensorflow", "keras")}
with open(os.environ["CLI_REPORT"], "w") as f:
    json.dump({"status": status, "modules": modules}, f)
"""
# Lines TensorFlow's C++ (absl) logging writes: "I0000 00:00:17.. 123 port.cc:153] ..."
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|\.cc:\d+\]|tensorflow/")
LINES = ["The cat sat on the mat .", "Hello world !", "ELMo vectors from a Keras layer ."]


def run_cli(tmp_path, *argv):
    """(exit status, stdout, stderr, report) of `keras-elmo ARGV` in a fresh interpreter."""
    proc, _, result = run_script_with_report(RUN_CLI, argv, tmp_path, cwd=REPO)
    assert proc.returncode == 0 and result is not None, proc.stderr[-3000:]
    return result["status"], proc.stdout, proc.stderr, result


def tf_log_lines(text):
    return [line for line in text.splitlines() if TF_LOG_LINE.search(line)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["embed", "--help"],
        ["export", "--help"],
        ["train", "--help"],
        [],  # no command: an argument error
        ["embed", "only-one-file.txt"],
        ["embed", "in.txt", "out.hdf5", "--batch-size", "0"],
        ["no-such-command"],
    ],
)
def test_help_and_argument_errors_do_not_import_tensorflow(tmp_path, argv):
    status, stdout, stderr, report = run_cli(tmp_path, *argv)
    assert report["modules"] == {"tensorflow": False, "keras": False}
    if argv and argv[-1] == "--help":
        assert status == 0 and stdout.startswith("usage: keras-elmo")
    else:
        assert status == 2 and "usage: keras-elmo" in stderr and "error:" in stderr


@pytest.mark.slow
def test_console_script_help_imports_no_tensorflow(tmp_path):
    # The installed `keras-elmo` script when there is one (.ci/run installs
    # it next to the interpreter), else the same few lines pip writes.
    script = os.path.join(os.path.dirname(sys.executable), "keras-elmo")
    if not os.path.exists(script):
        script = tmp_path / "keras-elmo"
        script.write_text(
            f"#!{sys.executable}\nimport sys\nfrom keras_elmo.cli import main\nsys.exit(main())\n"
        )
        script.chmod(0o755)
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: keras-elmo"), proc.stderr
    # -X importtime lines: "import time: self | cumulative | module"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "keras_elmo.cli" in imported
    assert not {"tensorflow", "keras"} & imported


@pytest.mark.slow
@pytest.mark.parametrize("module", ["keras_elmo.cli", "keras_elmo"])
def test_python_m_help_imports_no_tensorflow(module):
    """`python -m keras_elmo.cli` and `python -m keras_elmo` are the command line
    too: no TensorFlow for --help."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "keras_elmo" in imported  # (cli itself runs as __main__)
    assert not {"tensorflow", "keras"} & imported


@pytest.fixture
def three_lines(tmp_path, fixture_dir):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    model = [
        "--options-file",
        fixture_dir / "options.json",
        "--weight-file",
        fixture_dir / "lm_weights.hdf5",
    ]
    return text, model


def embedded(path):
    with h5py.File(path) as f:
        return sorted(k for k in f if k != "sentence_to_index"), [
            f[str(i)].shape for i in range(len(LINES))
        ]


@pytest.mark.slow
def test_embed_is_quiet_by_default_and_verbose_brings_tensorflow_back(tmp_path, three_lines):
    text, model = three_lines
    # What TensorFlow itself prints when imported here, timestamps dropped.
    plain = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        timeout=300,
    )

    def messages(text):
        return {line.split("] ", 1)[-1] for line in tf_log_lines(text)}

    out = tmp_path / "out.hdf5"
    status, stdout, stderr, report = run_cli(tmp_path, "embed", text, out, *model)
    assert status == 0, stderr
    assert tf_log_lines(stderr) == [], stderr
    assert stdout == ""
    assert embedded(out) == (["0", "1", "2"], [(3, 7, 32), (3, 3, 32), (3, 7, 32)])
    # The progress bar, written for a log (stderr is a pipe): whole lines, no
    # carriage returns, ASCII, with the count and the rate.
    assert "\r" not in stderr
    lines = stderr.splitlines()
    assert lines[-1].startswith("keras-elmo embed: 100%|##########| 3/3 ["), lines
    # The rate: sentences per second, or seconds per sentence when below 1/s.
    assert re.search(r"(sentence/s|s/sentence)\]$", lines[-1]), lines[-1]
    assert all(line.startswith("keras-elmo embed:") for line in lines), lines

    status, _, verbose_stderr, _ = run_cli(
        tmp_path, "embed", text, tmp_path / "v.hdf5", *model, "--verbose"
    )
    assert status == 0, verbose_stderr
    # --verbose leaves TensorFlow's logging as it is: whatever it prints on
    # import comes back.
    assert messages(plain.stderr) <= messages(verbose_stderr)


@pytest.mark.slow
def test_quiet_prints_nothing_on_success(tmp_path, three_lines):
    text, model = three_lines
    out = tmp_path / "out.hdf5"
    status, stdout, stderr, _ = run_cli(tmp_path, "embed", text, out, *model, "--quiet")
    assert (status, stdout, stderr) == (0, "", "")
    assert embedded(out)[0] == ["0", "1", "2"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_and_in_a_log():
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        with progress_bar(4, "job", unit="line", stream=stream, mininterval=0) as bar:
            for _ in range(4):
                bar.update(1)
    # A terminal gets redraws in place; a log gets whole lines, ASCII.
    assert terminal.getvalue().count("\r") >= 2
    assert "\r" not in log.getvalue()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("job:   0%|          | 0/4 [")
    assert lines[-1].startswith("job: 100%|##########| 4/4 [")
    assert lines[-1].endswith("line/s]")
    disabled = io.StringIO()
    with progress_bar(4, "job", enabled=False, stream=disabled) as bar:
        bar.update(4)
    assert disabled.getvalue() == ""
