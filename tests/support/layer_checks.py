"""The shared checks every keras_elmo layer goes through (keras-hub's `run_layer_test`).

`run_layer_test(make, inputs, ...)` builds a layer with `make()`, calls it,
and checks, each against the first call's outputs:
- the output shapes (and the mask shape, when one is expected);
- the weight counts (trainable and non-trainable, numbers each test gives);
- a symbolic call: a fresh layer called on KerasTensors of the inputs' shapes
  and dtypes gives outputs of the eager call's structure, shapes and dtypes
  (this is what checks `compute_output_shape` / `compute_output_spec`), and,
  for one tensor in, the same with the batch dimension unknown;
- the config round trip (`from_config(get_config())` gives the same config,
  and, given the same weights, the same outputs);
- Keras serialization (`serialize_keras_object` / `deserialize_keras_object`);
- `.keras` saving inside a functional model, loaded back (when a `tmp_path`
  is given; single-tensor inputs only);
- mixed precision: under "mixed_float16" the outputs come in float16 and the
  weights stay float32, the values agree with the float32 ones within
  float16 rounding, and a symbolic call gives the eager dtypes;
- one `fit` step of a tiny model around the layer (loss: the mean square of
  its float outputs): the loss is finite, every trainable weight moves and
  no non-trainable one does.

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


def _is_tensor(value):
    return isinstance(value, (tf.Tensor, np.ndarray, tf.Variable))


def _symbolic(value, batch=True):
    """Tensors in a structure -> KerasTensors of their shape and dtype (the first
    dimension unknown with batch=False)."""

    def one(x):
        if not _is_tensor(x):
            return x
        shape = tuple(x.shape)
        dtype = keras.backend.standardize_dtype(x.dtype)
        return keras.KerasTensor(shape if batch else (None,) + shape[1:], dtype=dtype)

    if isinstance(value, dict):
        return {k: _symbolic(v, batch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_symbolic(v, batch) for v in value)
    return one(value)


def describe(outputs):
    """Outputs -> the same structure (lists for lists and tuples) of (shape, dtype)."""
    if isinstance(outputs, dict):
        return {k: describe(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [describe(v) for v in outputs]
    return (tuple(outputs.shape), keras.backend.standardize_dtype(outputs.dtype))


def _with_shapes(described, shapes, batch):
    """`described`'s dtypes with the shapes of `shapes` (the expected-shape
    structure; the first dimension None with batch=False)."""
    if isinstance(described, dict):
        return {k: _with_shapes(v, shapes[k], batch) for k, v in described.items()}
    if isinstance(described, list) and not _is_shape(shapes):
        return [_with_shapes(v, s, batch) for v, s in zip(described, shapes)]
    shape = tuple(shapes) if batch else (None,) + tuple(shapes)[1:]
    return (shape, described[1])


def check_symbolic_call(make, inputs, call_kwargs, outputs, expected_shape):
    """A fresh layer on KerasTensors gives the eager outputs' structure and
    dtypes, and `expected_shape` (the eager shapes, but where a size depends
    on the values, not on the input shapes: None)."""
    batch_forms = [True]
    if _is_tensor(inputs) and not any(_is_tensor(v) for v in call_kwargs.values()):
        batch_forms.append(False)  # one tensor in: also with the batch unknown
    for batch in batch_forms:
        layer = make()
        got = describe(layer(_symbolic(inputs, batch), **_symbolic(call_kwargs, batch)))
        want = _with_shapes(describe(outputs), expected_shape, batch)
        assert got == want, (
            f"symbolic call ({'static' if batch else 'unknown'} batch) of "
            f"{layer.__class__.__name__}: {got} != {want}"
        )


def check_weight_counts(layer, trainable, non_trainable):
    got = (len(layer.trainable_weights), len(layer.non_trainable_weights))
    assert got == (trainable, non_trainable), (
        f"{layer.__class__.__name__}: (trainable, non-trainable) weights {got}, "
        f"expected {(trainable, non_trainable)}: "
        f"{[w.path for w in layer.trainable_weights]} / "
        f"{[w.path for w in layer.non_trainable_weights]}"
    )


class FitModel(keras.Model):
    """The layer under test, its loss the mean square of its float outputs."""

    def __init__(self, layer, call_kwargs):
        super().__init__(name="fit_model")
        self.inner = layer
        self.call_kwargs = call_kwargs

    def call(self, inputs):
        outputs = keras.tree.flatten(self.inner(inputs, **self.call_kwargs))
        floats = [o for o in outputs if "float" in keras.backend.standardize_dtype(o.dtype)]
        loss = sum(keras.ops.mean(keras.ops.square(keras.ops.cast(o, "float32"))) for o in floats)
        self.add_loss(loss)
        return loss


def check_fit_step(layer, inputs, call_kwargs):
    """One SGD step of `fit` on the inputs: the loss is finite, every trainable
    weight moves, no other weight does."""
    trainable = {w.path: w.numpy() for w in layer.trainable_weights}
    frozen = {w.path: w.numpy() for w in layer.non_trainable_weights}
    model = FitModel(layer, call_kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    # One batch; (x,): no targets. tf.data would stack a list into one tensor.
    x = tuple(inputs) if isinstance(inputs, list) else inputs
    data = tf.data.Dataset.from_tensors((x,))
    loss = model.fit(data, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss), loss
    now = {w.path: w.numpy() for w in layer.weights}
    still = [p for p, v in trainable.items() if np.array_equal(now[p], v)]
    assert still == [], f"trainable weights that did not move: {still}"
    moved = [p for p, v in frozen.items() if not np.array_equal(now[p], v)]
    assert moved == [], f"non-trainable weights that moved: {moved}"


def run_layer_test(
    make,
    inputs,
    expected_output_shape,
    *,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    call_kwargs=None,
    expected_mask_shape=None,
    run_mixed_precision=True,
    tmp_path=None,
    copy_state=copy_weights,
    run_training_check=True,
    expected_symbolic_shape=None,
):
    """Run the shared checks on the layer that `make(**extra)` builds.

    `make` takes optional keyword arguments forwarded to the layer (used for
    `dtype`); `expected_output_shape` is a shape tuple or the same nested
    structure as the outputs (list / dict of shape tuples). `copy_state(source,
    target)` gives a layer made from the config the first layer's state (its
    weights by default, into the layer built by one call; a layer with state
    beside its weights passes its own, which gets the layer as the config
    made it, not yet called). The expected weight counts are those of the
    layer after its first call. `run_training_check=False` skips the fit
    step (a layer with no trainable weights has nothing to fit).
    `expected_symbolic_shape`: the output shapes of a symbolic call on the
    inputs' shapes, where they differ from the eager ones (None where a size
    depends on the input's values); defaults to `expected_output_shape`.
    Returns the layer and its float32 outputs.
    """
    call_kwargs = call_kwargs or {}
    layer = make()
    outputs = _call(layer, inputs, call_kwargs)

    # Shapes (nested lists/tuples/dicts of shape tuples, like the outputs).
    got_shapes = [a.shape for a in flat_arrays(outputs)]
    want_shapes = _flat_shapes(expected_output_shape)
    assert got_shapes == want_shapes, (got_shapes, want_shapes)
    check_weight_counts(layer, expected_num_trainable_weights, expected_num_non_trainable_weights)
    if expected_symbolic_shape is None:
        expected_symbolic_shape = expected_output_shape
    check_symbolic_call(make, inputs, call_kwargs, outputs, expected_symbolic_shape)
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
        # The symbolic call under the policy too: its dtypes are the eager ones.
        check_symbolic_call(
            lambda: make(dtype="mixed_float16"),
            inputs,
            call_kwargs,
            mixed_out,
            expected_symbolic_shape,
        )
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

    if run_training_check:
        # Last: it changes the layer's weights (on a clone, not the returned layer).
        trained = layer.__class__.from_config(config)
        if copy_state is copy_weights:
            _call(trained, inputs, call_kwargs)
        copy_state(layer, trained)
        check_fit_step(trained, inputs, call_kwargs)
    return layer, outputs
