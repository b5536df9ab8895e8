"""The tests' tiny random ELMo model: its options, a layer with random weights,
and the layer traced for each input form."""

import copy

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


def tiny_options():
    """A copy of TINY_OPTIONS the caller may change."""
    return copy.deepcopy(TINY_OPTIONS)


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
