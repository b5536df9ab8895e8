"""ElmoLayer.clone: same config and state, overrides applied, one copy for every caller."""

import numpy as np
import pytest

from keras_elmo import ElmoLayer
from keras_elmo.serving import export

TOKENS = [["The", "cat", "sat", "."], ["Hello", "!", "", ""]]


def random_layer(options, **kwargs):
    """A built layer whose every weight (mixes and initial state too) is random."""
    layer = ElmoLayer(options, **kwargs)
    layer.build()
    rng = np.random.default_rng(3)
    for var in layer.weights:
        var.assign(rng.normal(0, 0.5, var.shape).astype("float32"))
    return layer


def as_numpy(outputs):
    if isinstance(outputs, dict):
        return {key: np.asarray(value) for key, value in outputs.items()}
    return np.asarray(outputs)


def assert_same(a, b):
    a, b = as_numpy(a), as_numpy(b)
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    else:
        np.testing.assert_array_equal(a, b)


def test_clone_gives_the_same_outputs_bit_for_bit(tiny_options):
    layer = random_layer(tiny_options, output_mode="dict", num_output_representations=2)
    clone = layer.clone()
    assert clone is not layer
    assert clone.get_config() == layer.get_config()
    assert all(a is not b for a, b in zip(layer.weights, clone.weights))
    assert_same(layer(TOKENS), clone(TOKENS))
    # The copies are copies: changing the clone leaves the original alone.
    before = as_numpy(layer(TOKENS))
    clone.mixes[0].gamma.assign([7.0])
    assert_same(before, layer(TOKENS))
    assert not np.array_equal(before["elmo"], np.asarray(clone(TOKENS)["elmo"]))


def test_overrides_take_effect_and_are_checked(tiny_options):
    layer = random_layer(tiny_options)
    dict_clone = layer.clone(output_mode="dict", dropout=0.25, max_batch_size=3)
    assert (dict_clone.output_mode, dict_clone.dropout, dict_clone.max_batch_size) == (
        "dict",
        0.25,
        3,
    )
    np.testing.assert_array_equal(np.asarray(dict_clone(TOKENS)["elmo"]), np.asarray(layer(TOKENS)))
    low = layer.clone(matmul_dtype="bfloat16")
    assert low.matmul_dtype == "bfloat16"
    gap = np.abs(np.asarray(low(TOKENS)) - np.asarray(layer(TOKENS))).max()
    assert 0 < gap < 0.5  # the rounding shows, the weights are the same
    # One more mix than the original: the first is copied, the second is new.
    two = layer.clone(num_output_representations=2)
    first, second = two(TOKENS)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(layer(TOKENS)))
    assert float(two.mixes[1].gamma.numpy()[0]) == 1.0
    with pytest.raises(ValueError, match="dropout"):
        layer.clone(dropout=2.0)
    with pytest.raises(ValueError, match="fine_tune"):
        layer.clone(fine_tune="everything")
    with pytest.raises((TypeError, ValueError), match="colour"):
        layer.clone(colour="blue")


def test_clone_with_other_options_is_refused_naming_the_shape(tiny_options):
    layer = random_layer(tiny_options)
    wider = {**tiny_options, "lstm": {**tiny_options["lstm"], "dim": 16}}
    with pytest.raises(ValueError, match=r"ElmoLayer.clone: variable .* has shape"):
        layer.clone(options=wider)


def test_clone_of_a_cached_layer_keeps_its_cache(tiny_options):
    layer = random_layer(tiny_options).cache_vocabulary(["The", "cat", "!"])
    clone = layer.clone()
    assert clone.token_cache.active
    assert clone.token_cache.vocabulary == ["The", "cat", "!"]
    np.testing.assert_array_equal(
        clone.token_cache.vectors.numpy(), layer.token_cache.vectors.numpy()
    )
    assert clone.token_cache.vectors is not layer.token_cache.vectors
    assert_same(layer(TOKENS), clone(TOKENS))
    assert not layer.clone(keep_token_cache=False).token_cache.active
    with pytest.raises(ValueError, match="token cache"):
        layer.clone(fine_tune="all")


def test_stateful_clone_carries_the_state_only_with_as_many_rows(tiny_options):
    layer = random_layer(tiny_options, stateful=True, max_batch_size=2)
    layer(TOKENS)  # state now carried from this batch
    same = layer.clone()
    assert_same(layer(TOKENS), same(TOKENS))
    fresh = layer.clone(stateful=False)
    layer.reset_states()
    assert_same(layer(TOKENS), fresh(TOKENS))
    other_rows = layer.clone(max_batch_size=4)
    other_rows.bilm.reset_states()
    np.testing.assert_array_equal(
        other_rows.bilm.state_h.numpy()[:, :, 0], layer.bilm.initial_h.numpy()
    )


def test_the_serving_copy_is_a_clone(tiny_options):
    layer = random_layer(tiny_options, stateful=True, dropout=0.5, max_tokens_per_request=9)
    layer.cache_vocabulary(["cat"])
    copy = export.serving_copy(layer)
    assert (copy.output_mode, copy.stateful, copy.dropout, copy.trainable) == (
        "dict",
        False,
        0.0,
        False,
    )
    assert copy.max_tokens_per_request is None
    assert not copy.token_cache.active
    layer.reset_states()
    # Without the cache, as the copy: the same computation, so bitwise (a
    # cached "cat" is another path, which Eigen rounds differently).
    reference = layer.clone(keep_token_cache=False, stateful=False, dropout=0.0, output_mode="dict")
    assert_same(reference(TOKENS), copy(TOKENS))
