"""Which implementation the model's layers run: TensorFlow kernels or `keras.ops`.

Every numeric layer of the model (char CNN, LSTM, biLM, scalar mix) has one
implementation in `keras.ops`, which runs on each Keras backend (TensorFlow,
JAX, PyTorch) with static shapes, and, on the TensorFlow backend, its
TensorFlow kernels (packed sequences, distinct-token CNN, chunking,
feature-major layout), the fast path there, as Keras keeps cuDNN beside its
generic LSTM loop. Both compute the same numbers up to float32 rounding
(tests/test_backends_numerics.py).

On TensorFlow the `keras.ops` path can be asked for (to compare the two, or to
time it): set the environment variable `KERAS_ELMO_PORTABLE=1` (read at each
call, so before a function is traced), or, in tests, `FORCE_PORTABLE = True`.
"""

import os

import keras

PORTABLE_ENV = "KERAS_ELMO_PORTABLE"
# Tests set this (monkeypatch) to run the keras.ops path on TensorFlow too.
FORCE_PORTABLE = False


def portable_requested():
    """Whether the `keras.ops` path was asked for on TensorFlow (switch or env)."""
    return FORCE_PORTABLE or os.environ.get(PORTABLE_ENV, "") == "1"


def use_tf_kernels():
    """True on the TensorFlow backend unless the portable path was asked for."""
    return keras.backend.backend() == "tensorflow" and not portable_requested()


# Eager JAX calls pad the time axis up to one of a few lengths (powers of two
# from this one), so that the compiled functions are reused across batches of
# similar lengths; padded positions are masked (no state change, zero output)
# and cut off again. Under `jax.jit` (fit, predict) shapes are the caller's.
JAX_MIN_BUCKET = 8


def time_bucket(steps):
    """The padded length of `steps` positions for an eager JAX call."""
    bucket = JAX_MIN_BUCKET
    while bucket < steps:
        bucket *= 2
    return bucket


def eager_jax(x):
    """True when `x` is a concrete JAX array (an eager call, not a jit trace)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return not isinstance(x, jax.core.Tracer)


def jax_jit(fn, **kwargs):
    """`jax.jit(fn, **kwargs)`; imported on use (JAX need not be installed)."""
    import jax

    return jax.jit(fn, **kwargs)
