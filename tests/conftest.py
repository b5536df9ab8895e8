"""pytest set-up: quiet TensorFlow, one kernel thread per xdist worker, and the
shared fixtures. Fixtures only: shared helpers and constants live in
tests/support/ and are imported from there (tests/test_architecture.py checks
that no test imports from conftest)."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest -n N the N test processes share the cores: one thread each
    # for TensorFlow's kernels (inherited by the subprocesses a test starts).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

# tests/ on the path (also when pytest runs outside the checkout's root): the
# tests import `support.*` and the numpy reference from there.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pytest  # noqa: E402
from support import tiny_model  # noqa: E402
from support.bilm_fixture import FIXTURE_DIR  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """A test marked only_backend(NAME, ...) is deselected (not skipped) under
    another Keras backend: it runs in the CI leg of its backend."""
    import keras

    backend = keras.backend.backend()
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("only_backend")
        (drop if marker is not None and backend not in marker.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def tiny_options():
    return tiny_model.tiny_options()


@pytest.fixture(scope="session")
def fixture_dir():
    return FIXTURE_DIR


@pytest.fixture
def download_cache(tmp_path, monkeypatch):
    """An empty model-download cache under tmp_path, with downloads allowed."""
    from keras_elmo.checkpoints import download

    root = tmp_path / "cache"
    monkeypatch.setenv(download.CACHE_ENV, str(root))
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)
    return root
