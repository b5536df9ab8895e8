"""keras_elmo.ScalarMix against numpy arithmetic written here."""

import numpy as np
import pytest
from support.tolerance import assert_same_up_to_path

from keras_elmo import ScalarMix


def numpy_mix(layers, weights, gamma, mask=None):
    if mask is not None:  # bilm-tf's layer norm: one mean/variance per layer over real tokens
        m = mask[..., None].astype("float64")
        normed = []
        for x in layers:
            n = m.sum() * x.shape[-1]
            mean = (x * m).sum() / n
            var = (((x - mean) * m) ** 2).sum() / n
            normed.append((x - mean) / np.sqrt(var + 1e-12))
        layers = normed
    s = np.exp(weights) / np.exp(weights).sum()
    return gamma * sum(w * x for w, x in zip(s, layers))


@pytest.fixture
def layers():
    rng = np.random.default_rng(3)
    return [rng.normal(0, 2, (2, 4, 5)).astype("float32") for _ in range(3)]


def test_mix_matches_numpy(layers):
    mix = ScalarMix(3)
    mix.build()
    mix.scalar_weights.assign([0.3, -0.2, 0.5])
    mix.gamma.assign([1.7])
    got = mix(layers).numpy()
    assert_same_up_to_path(got, numpy_mix(layers, np.array([0.3, -0.2, 0.5]), 1.7))


def test_masked_layer_norm_matches_numpy(layers):
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    mix = ScalarMix(3, do_layer_norm=True)
    mix.build()
    mix.scalar_weights.assign([0.1, 0.0, -0.4])
    got = mix(layers, mask=mask).numpy()
    want = numpy_mix([x.astype("float64") for x in layers], np.array([0.1, 0.0, -0.4]), 1.0, mask)
    # Padding positions are normalised with the same statistics, so they
    # are compared too.
    assert_same_up_to_path(got, want)
    # Keras hands a list input one mask per element.
    per_layer = mix(layers, mask=[mask, None, mask]).numpy()
    np.testing.assert_array_equal(per_layer, got)


def test_l2_penalty_in_losses(layers):
    mix = ScalarMix(3, l2_coef=0.01)
    mix.build()
    mix.scalar_weights.assign([0.3, -0.2, 0.5])
    mix(layers)
    assert len(mix.losses) == 1
    np.testing.assert_allclose(float(mix.losses[0]), 0.01 * (0.09 + 0.04 + 0.25), rtol=1e-6)


def test_bad_arguments_are_clear(layers):
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        ScalarMix(0)
    with pytest.raises(ValueError, match="l2_coef must be >= 0"):
        ScalarMix(3, l2_coef=-1.0)
    with pytest.raises(ValueError, match="expects 3 layers, got 2"):
        ScalarMix(3)(layers[:2])
    with pytest.raises(ValueError, match="needs a mask"):
        ScalarMix(3, do_layer_norm=True)(layers)


def test_symbolic_call_gives_the_layers_shape():
    import keras

    inputs = [keras.Input((None, 5)) for _ in range(3)]
    assert tuple(ScalarMix(3)(inputs).shape) == (None, None, 5)
    # The layer count is checked when a functional model is built, not first at run time.
    with pytest.raises(ValueError, match="expects 3 layers, got 2"):
        ScalarMix(3)(inputs[:2])
