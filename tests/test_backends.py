"""keras_elmo under KERAS_BACKEND=jax and torch, with TensorFlow installed.

One Python process cannot switch Keras backends, so each backend runs in a
fresh interpreter with KERAS_BACKEND set: `import keras_elmo` and the
registration work there, and every TensorFlow-only feature fails at once
with one `BackendError` line naming the backend, before any work.
"""

import os
import re
import textwrap

import pytest
from support.paths import REPO, TESTS
from support.processes import run_python_json

OTHER_BACKENDS = ("jax", "torch")

TENSORFLOW_ONLY = textwrap.dedent("""
    import contextlib, io, json, os, sys
    sys.path.insert(0, {tests!r})
    import keras
    import keras_elmo
    from keras_elmo import errors, registration
    from support.tiny_model import TINY_OPTIONS

    out = {{"backend": keras.config.backend()}}
    registration.register_keras_objects()
    out["registered"] = all(
        keras.saving.get_registered_object(f"keras_elmo>{{name}}") is getattr(keras_elmo, name)
        for name in ("ElmoLayer", "ElmoTokenizer", "ScalarMix")
    )
    work = {work!r}

    def error(call):
        try:
            call()
        except errors.BackendError as err:
            return str(err)
        return None

    from keras_elmo.integrations import beam
    from keras_elmo.serving import export
    from keras_elmo.training.trainer import BiLMTrainer

    out["errors"] = {{
        "export_saved_model": error(lambda: keras_elmo.export_saved_model(None, work + "/e1")),
        "export_from_files": error(lambda: export.export_from_files("m.keras", work + "/e2")),
        "embed_corpus": error(lambda: beam.embed_corpus(["in.txt"], work + "/b", "elmo-small-en")),
        "EmbedSentences": error(lambda: beam.EmbedSentences("elmo-small-en")),
        "BiLMTrainer": error(lambda: BiLMTrainer(TINY_OPTIONS, 10)),
        "tf_text": error(lambda: keras_elmo.ElmoTokenizer(mode="tf_text")),
    }}
    from keras_elmo import cli

    commands = {{
        "export": ["export", "--model", "elmo-small-en", work + "/e3"],
        "beam-embed": ["beam-embed", "--input", "in.txt", "--output-dir", work + "/b2"],
        "train": ["train", "--vocab", "v.txt", "--output-dir", work, "t.txt"],
        "perplexity": ["perplexity", "--model-dir", work, "t.txt"],
    }}
    out["cli"] = {{}}
    for name, argv in commands.items():
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = cli.main(argv)
        out["cli"][name] = [status, stderr.getvalue()]
    out["left"] = sorted(os.listdir(work))
    print(json.dumps(out))
""")


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_tensorflow_only_features_say_so_on_other_backends(backend, tmp_path):
    code = TENSORFLOW_ONLY.format(tests=str(TESTS), work=str(tmp_path))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = run_python_json(["-c", code], env=env)
    assert out["backend"] == backend and out["registered"]
    for entry, message in out["errors"].items():
        assert message is not None, f"{entry} did not raise BackendError on {backend}"
        assert f"needs the TensorFlow backend, but Keras runs on '{backend}'" in message, message
        assert "KERAS_BACKEND=tensorflow" in message and "\n" not in message, message
    for command, (status, stderr) in out["cli"].items():
        assert status == 2, (command, stderr)
        assert stderr.count("\n") == 1, (command, stderr)
        prefix = f"keras-elmo {command}: error: the {command} command needs the TensorFlow"
        assert stderr.startswith(prefix), stderr
    assert out["left"] == []  # nothing was written before the errors


def ci_command():
    """.ci/run's one command line (its continued lines joined)."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    return " ".join(re.sub(r"\\\n\s*", "", script).splitlines()[-1].split())


def test_ci_runs_the_suite_on_tensorflow_and_the_multi_backend_tests_on_the_others():
    steps = ci_command().split(" && ")
    install = next(step for step in steps if "pip install" in step)
    assert "-c .ci/constraints.txt" in install
    assert re.search(r"\[[^]]*\bjax\b[^]]*\]", install) and "torch" in install, install
    runs = [step for step in steps if "pytest" in step]
    assert runs[0] == ".venv/bin/python -m pytest -q -n 2", runs  # everything, TensorFlow
    assert runs[1:] == [
        f"KERAS_BACKEND={backend} .venv/bin/python -m pytest -q -n 2 -m multi_backend"
        for backend in OTHER_BACKENDS
    ]
    marked = [p.name for p in TESTS.glob("test_*.py") if "mark.multi_backend" in p.read_text()]
    assert "test_preprocessor.py" in marked, marked


def test_the_extras_floors_fit_the_ci_pins():
    """pyproject's [jax] and [torch] floors are at or below the CI pins, and the
    pinned torch is the CPU-only build."""
    # (pyproject.toml's own lines: tomllib is Python >= 3.11, the package >= 3.10.)
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    extras = {
        name: re.findall(r'"([^"]+)"', specs)
        for name, specs in re.findall(r"^(jax|torch) = \[(.*)\]$", text, flags=re.M)
    }
    pins = dict(
        line.split("==")
        for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"].endswith("+cpu"), pins["torch"]

    def version(text):
        return tuple(int(part) for part in text.split("+")[0].split("."))

    for extra, names in (("jax", ("jax", "jaxlib")), ("torch", ("torch",))):
        floors = dict(spec.split(">=") for spec in extras[extra])
        assert sorted(floors) == sorted(names), extras[extra]
        for name in names:
            assert version(floors[name]) <= version(pins[name]), (name, floors[name], pins[name])
