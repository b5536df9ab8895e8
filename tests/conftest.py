"""Shared test set-up: where the fixtures are, tiny configs, quiet TensorFlow."""

import copy
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest -n N the N test processes share the cores: one thread each
    # for TensorFlow's kernels (inherited by the subprocesses a test starts).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
# The bilm-tf test model and its expected outputs travel with the repository
# (tests/fixtures/bilm-tf/SOURCE.md says where they come from).
FIXTURES = REPO / "tests" / "fixtures" / "bilm-tf"

# A small random model: skip connections on, like the published ones.
TINY_OPTIONS = {
    "lstm": {
        "dim": 12,
        "projection_dim": 6,
        "n_layers": 2,
        "cell_clip": 3,
        "proj_clip": 3,
        "use_skip_connections": True,
    },
    "char_cnn": {
        "embedding": {"dim": 4},
        "n_characters": 262,
        "max_characters_per_token": 50,
        "activation": "relu",
        "filters": [[1, 4], [2, 4], [3, 8]],
        "n_highway": 1,
    },
}


def random_tiny_layer(seed=17, scale=0.5, **kwargs):
    """An ElmoLayer of TINY_OPTIONS with every weight drawn from N(0, scale), built.

    The model the tests' path tolerance was measured on (tests/test_properties.py,
    benchmarks/path_tolerance.py)."""
    import numpy as np

    from keras_elmo import ElmoLayer

    layer = ElmoLayer(TINY_OPTIONS, **kwargs)
    layer.build()
    rng = np.random.default_rng(seed)
    for var in layer.weights:
        var.assign(rng.normal(0, scale, var.shape).astype("float32"))
    return layer


@pytest.fixture
def tiny_options():
    return copy.deepcopy(TINY_OPTIONS)


@pytest.fixture(scope="session")
def fixture_dir():
    return FIXTURES


@pytest.fixture
def download_cache(tmp_path, monkeypatch):
    """An empty model-download cache under tmp_path, with downloads allowed."""
    from keras_elmo.checkpoints import download

    root = tmp_path / "cache"
    monkeypatch.setenv(download.CACHE_ENV, str(root))
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)
    return root


import sys  # noqa: E402

# Test helpers (the numpy reference) live next to the tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def traced_calls(layer, max_chars=50):
    """Per ElmoLayer input form, `layer` as one `tf.function` traced for any batch and T."""
    import tensorflow as tf

    specs = {
        "sentences": tf.TensorSpec([None], tf.string),
        "tokens": tf.TensorSpec([None, None], tf.string),
        "ragged": tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1),
        "char ids": tf.TensorSpec([None, None, max_chars], tf.int32),
    }
    return {form: tf.function(layer.__call__, input_signature=[s]) for form, s in specs.items()}
