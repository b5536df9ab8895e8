"""The shared checks every keras_elmo layer goes through (keras-hub's `run_layer_test`).

`run_layer_test(make, inputs, ...)` builds a layer with `make()`, calls it,
and checks, each against the first call's outputs:
- the output shapes (and the mask shape, when one is expected);
- the config round trip (`from_config(get_config())` gives the same config,
  and, given the same weights, the same outputs);
- Keras serialization (`serialize_keras_object` / `deserialize_keras_object`);
- `.keras` saving inside a functional model, loaded back (when a `tmp_path`
  is given; single-tensor inputs only);
- mixed precision: under "mixed_float16" the outputs come in float16 and the
  weights stay float32, and the values agree with the float32 ones within
  float16 rounding.

Different execution paths (eager vs a saved and reloaded model) are compared
with the tests' path tolerance (support/tolerance.py), not bitwise: they may
pick other kernels or sum in another order.
"""

import keras
import numpy as np
import tensorflow as tf
from support.tolerance import assert_same_up_to_path, flat_arrays

# float16 keeps 11 significant bits: relative rounding 2**-11 per operation.
FLOAT16_RTOL = 2e-2


def _is_shape(value):
    return isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value)


def _flat_shapes(expected):
    if isinstance(expected, dict):
        return [s for key in sorted(expected) for s in _flat_shapes(expected[key])]
    if _is_shape(expected):
        return [tuple(expected)]
    return [s for item in expected for s in _flat_shapes(item)]


def _call(layer, inputs, call_kwargs):
    return layer(inputs, **call_kwargs)


def copy_weights(source, target):
    target.set_weights(source.get_weights())


def run_layer_test(
    make,
    inputs,
    expected_output_shape,
    call_kwargs=None,
    expected_mask_shape=None,
    run_mixed_precision=True,
    tmp_path=None,
    copy_state=copy_weights,
):
    """Run the shared checks on the layer that `make(**extra)` builds.

    `make` takes optional keyword arguments forwarded to the layer (used for
    `dtype`); `expected_output_shape` is a shape tuple or the same nested
    structure as the outputs (list / dict of shape tuples). `copy_state(source,
    target)` gives a layer made from the config the first layer's state (its
    weights by default, into the layer built by one call; a layer with state
    beside its weights passes its own, which gets the layer as the config
    made it, not yet called).
    Returns the layer and its float32 outputs.
    """
    call_kwargs = call_kwargs or {}
    layer = make()
    outputs = _call(layer, inputs, call_kwargs)

    # Shapes (nested lists/tuples/dicts of shape tuples, like the outputs).
    got_shapes = [a.shape for a in flat_arrays(outputs)]
    want_shapes = _flat_shapes(expected_output_shape)
    assert got_shapes == want_shapes, (got_shapes, want_shapes)
    if expected_mask_shape is not None:
        mask = layer.compute_mask(inputs)
        masks = mask if isinstance(mask, list) else [mask]
        for m in masks:
            assert tuple(m.shape) == tuple(expected_mask_shape), m.shape

    # Config round trip, then the same weights give the same outputs.
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    if copy_state is copy_weights:
        _call(clone, inputs, call_kwargs)  # builds it: weights go into a built layer
    copy_state(layer, clone)
    assert_same_up_to_path(_call(clone, inputs, call_kwargs), outputs, err_msg="from_config clone")

    # Keras serialization.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, layer.__class__)
    assert restored.get_config() == config

    # `.keras` saving inside a functional model.
    if tmp_path is not None and not isinstance(inputs, (list, tuple, dict)):
        x = tf.convert_to_tensor(inputs)
        model_input = keras.Input(shape=x.shape[1:], dtype=x.dtype.name)
        model = keras.Model(model_input, _call(layer, model_input, call_kwargs))
        path = tmp_path / f"{layer.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        assert_same_up_to_path(loaded(x), outputs, err_msg=".keras reload")

    # Mixed precision: outputs in the compute dtype, weights float32.
    if run_mixed_precision:
        mixed = make(dtype="mixed_float16")
        mixed_out = _call(mixed, inputs, call_kwargs)
        copy_state(layer, mixed)
        mixed_out = _call(mixed, inputs, call_kwargs)
        for weight in mixed.weights:
            assert weight.dtype in ("float32", "int32", "int64", "string", "bool"), (
                weight.path,
                weight.dtype,
            )
        for got, want in zip(flat_arrays(mixed_out), flat_arrays(outputs)):
            if want.dtype == np.float32:
                assert got.dtype == np.float16, got.dtype
                scale = max(float(np.abs(want).max()), 1.0)
                np.testing.assert_allclose(
                    got.astype("float32"), want, atol=FLOAT16_RTOL * scale, rtol=0
                )
    return layer, outputs
