""".keras files across Keras backends (issue 24, "What it must show").

A model holding the shipped small model's ElmoLayer (with a trained-looking
scalar mix and a Dense head) is saved on one backend and loaded on another,
each in a fresh interpreter with KERAS_BACKEND set (one Python process
cannot switch backends): saved on TensorFlow, loaded on JAX and on
PyTorch; saved on PyTorch, loaded on TensorFlow. The loaded model's outputs
on the same char ids equal the saving backend's outputs within the written
cross-path tolerance (tests/support/tolerance.py: another backend is
another path), and the head's weights arrive bitwise.
"""

import json
import os
import textwrap

import numpy as np
import pytest
from support.paths import REPO
from support.processes import run_python_json
from support.tolerance import assert_same_up_to_path

pytestmark = pytest.mark.slow

SENTENCES = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "world", "!"]]

SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    import numpy as np
    import keras_elmo

    mode, path, out = sys.argv[1:4]
    ids = keras_elmo.batch_to_ids(json.loads(sys.argv[4]), 50).astype("int32")
    if mode == "save":
        keras.utils.set_random_seed(3)
        elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en", do_layer_norm=True)
        inputs = keras.Input((None, 50), dtype="int32")
        model = keras.Model(inputs, keras.layers.Dense(3)(elmo(inputs)))
        elmo.mixes[0].scalar_weights.assign(np.array([0.3, -0.2, 0.5], "float32"))
        elmo.mixes[0].gamma.assign(np.array([1.7], "float32"))
        model.save(path)
    else:
        model = keras.saving.load_model(path)
    head = model.layers[-1].get_weights()
    outputs = keras.ops.convert_to_numpy(model(ids))
    np.savez(out, outputs=outputs, kernel=head[0], bias=head[1])
    print(json.dumps({"backend": keras.backend.backend(), "shape": list(outputs.shape)}))
""")


def run_on(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_ELMO_PORTABLE", None)
    report = run_python_json(
        ["-c", SCRIPT, *map(str, args), json.dumps(SENTENCES)], env=env, cwd=REPO
    )
    assert report["backend"] == backend, report
    return report


@pytest.mark.parametrize(
    "saved_on,loaded_on", [("tensorflow", "jax"), ("tensorflow", "torch"), ("torch", "tensorflow")]
)
def test_a_keras_file_saved_on_one_backend_loads_on_another(tmp_path, saved_on, loaded_on):
    path = tmp_path / "model.keras"
    saved = run_on(saved_on, "save", path, tmp_path / "saved.npz")
    loaded = run_on(loaded_on, "load", path, tmp_path / "loaded.npz")
    assert saved["shape"] == loaded["shape"] == [2, 7, 3]
    want, got = np.load(tmp_path / "saved.npz"), np.load(tmp_path / "loaded.npz")
    np.testing.assert_array_equal(got["kernel"], want["kernel"])
    np.testing.assert_array_equal(got["bias"], want["bias"])
    # The padding of the short sentence is masked to zeros before the head,
    # so it is the head's bias there on both.
    np.testing.assert_array_equal(want["outputs"][1, 3:], np.broadcast_to(want["bias"], (4, 3)))
    assert np.abs(want["outputs"][:, :3]).max() > 0.1  # not a model of zeros
    assert_same_up_to_path(got["outputs"], want["outputs"])
