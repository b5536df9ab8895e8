"""The install the README gives: nothing in the user's working directory shadows it.

The suite runs after the README's `pip install -e .`; these checks start a
fresh Python the way a user's script does, from a directory that holds a
folder named `keras_elmo/` (no `__init__.py`: a namespace package candidate).
"""

import os

import pytest
from support.processes import REPO, run_python_json


def _python_in(directory, code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return run_python_json(["-c", code], timeout=120, env=env, cwd=directory)


@pytest.fixture
def user_dir(tmp_path):
    """A working directory with a stray keras_elmo/ folder in it, as beside a clone."""
    (tmp_path / "keras_elmo").mkdir()
    (tmp_path / "keras_elmo" / "notes.txt").write_text("not a package\n")
    return tmp_path


@pytest.mark.slow
def test_a_keras_elmo_folder_in_the_working_directory_does_not_shadow_the_install(user_dir):
    # find_spec only: which package `import keras_elmo` would run, without running it.
    found = _python_in(
        user_dir,
        "import importlib.util, json, pathlib; s = importlib.util.find_spec('keras_elmo'); "
        "print(json.dumps(s.origin and str(pathlib.Path(s.origin).resolve())))",
    )
    assert found == str(REPO / "keras_elmo" / "__init__.py")


@pytest.mark.slow
def test_the_installed_package_works_from_such_a_directory(user_dir):
    found = _python_in(
        user_dir,
        "import json; from keras_elmo import ElmoLayer; "
        "from keras_elmo.checkpoints import presets; "
        "print(json.dumps([ElmoLayer.__name__, str(presets.shipped_model_dir('elmo-small-en'))]))",
    )
    # The editable install reads the checkout's shipped model (softmax.npz included).
    assert found == ["ElmoLayer", str(REPO / "saved_models" / "elmo-small-en")]
