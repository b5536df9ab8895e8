"""`import keras_elmo` registers every keras_elmo Keras object however the program
was started, and every command-line path that loads a `.keras` file reads the
quick start's model (raw text -> ElmoTokenizer -> ElmoLayer -> pooling -> Dense).

The programs run in fresh interpreters: in this process pytest has imported
everything already, so a missing registration would not show here.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support.bilm_fixture import FIXTURE_DIR as FIXTURES
from support.paths import REPO

from keras_elmo import registration

SENTENCES = ["What a lovely film .", "Dull ."]


def test_the_module_list_names_every_module_that_registers_a_keras_object():
    registering = set()
    for path in sorted((REPO / "keras_elmo").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "register_keras_serializable"
                or isinstance(node, ast.Name)
                and node.id == "register_keras_serializable"
            ):
                module = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
                registering.add(module)
    assert registering == set(registration.KERAS_MODULES)


@pytest.fixture(scope="module")
def quickstart_model(tmp_path_factory):
    """The README quick start's model on the bilm-tf test model, as a .keras file,
    with its predictions for SENTENCES."""
    import keras
    import tensorflow as tf

    import keras_elmo

    folder = tmp_path_factory.mktemp("quickstart")
    elmo = keras_elmo.ElmoLayer.from_original(
        FIXTURES / "options.json", FIXTURES / "lm_weights.hdf5"
    )
    text = keras.Input(shape=(), dtype="string")
    x = elmo(keras_elmo.ElmoTokenizer()(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    path = folder / "small.keras"
    model.save(path)
    expected = model.predict(tf.constant(SENTENCES), verbose=0)
    return path, expected


def _run(argv, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


PREDICT = """\
import json, sys
import keras
import tensorflow as tf
model = keras.models.load_model(sys.argv[1])
print(json.dumps(model.predict(tf.constant({sentences!r}), verbose=0).tolist()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["-m pkg.mod", "-m pkg", "script"])
def test_an_app_that_imports_keras_elmo_loads_the_model(tmp_path, quickstart_model, how):
    """`python -m myapp.predict`, `python -m myapp` (a __main__.py) and a plain
    script, each with `import keras_elmo` in the package, load the .keras file."""
    path, expected = quickstart_model
    app = tmp_path / "myapp"
    app.mkdir()
    (app / "__init__.py").write_text("import keras_elmo  # noqa: F401\n")
    code = PREDICT.format(sentences=SENTENCES)
    (app / "predict.py").write_text(code)
    (app / "__main__.py").write_text(code)
    (tmp_path / "run.py").write_text("import myapp  # noqa: F401\n" + code)
    argv = {
        "-m pkg.mod": ["-m", "myapp.predict"],
        "-m pkg": ["-m", "myapp"],
        "script": ["run.py"],
    }[how]
    proc = _run([sys.executable, *argv, str(path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.array(json.loads(proc.stdout.splitlines()[-1]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_import_registers_every_keras_object_in_a_python_m_program(tmp_path):
    app = tmp_path / "myapp"
    app.mkdir()
    (app / "__init__.py").write_text("import keras_elmo  # noqa: F401\n")
    (app / "check.py").write_text(
        textwrap.dedent(
            """\
            import json
            import keras
            names = ["ElmoLayer", "ElmoTokenizer", "ScalarMix", "BidirectionalLM",
                     "CharCNNTokenEncoder", "EfmlTokenEncoder", "ProjectedLSTM",
                     "TokenCache", "SharedSoftmax", "BiLMTrainer"]
            found = {n: keras.saving.get_registered_object("keras_elmo>" + n) is not None
                     for n in names}
            print(json.dumps(found))
            """
        )
    )
    proc = _run([sys.executable, "-m", "myapp.check"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found == dict.fromkeys(found, True) and len(found) == 10


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["console script", "python -m keras_elmo.cli"])
def test_keras_elmo_export_of_the_quickstart_model(tmp_path, quickstart_model, launcher):
    path, _ = quickstart_model
    script = os.path.join(os.path.dirname(sys.executable), "keras-elmo")
    if launcher == "console script" and os.path.exists(script):
        command = [script]
    else:
        command = [sys.executable, "-m", "keras_elmo.cli"]
    proc = _run([*command, "export", tmp_path / "export", "--keras-file", path], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(tmp_path / "export" / "1")
    assert (tmp_path / "export" / "1" / "saved_model.pb").is_file()
    metadata = json.loads(
        (tmp_path / "export" / "1" / "assets.extra" / "keras_elmo.json").read_text()
    )
    assert metadata["options"]["lstm"]["projection_dim"] == 16  # the bilm-tf test model


@pytest.mark.slow
def test_keras_elmo_beam_embed_of_the_quickstart_model(tmp_path, quickstart_model):
    pytest.importorskip("apache_beam")
    path, _ = quickstart_model
    text = tmp_path / "in.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = _run(
        [
            sys.executable,
            "-m",
            "keras_elmo.cli",
            "beam-embed",
            "--input",
            text,
            "--output-dir",
            out,
            "--keras-file",
            path,
            "--top",
            "--quiet",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert [entry["lines"] for entry in manifest["inputs"]] == [2]
