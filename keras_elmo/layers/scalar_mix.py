"""The scalar mix: `gamma * sum_k softmax(w)_k * layer_k` (the ELMo vector)."""

import keras
from keras import ops

# bilm-tf's epsilon for its masked layer norm (AllenNLP uses 1e-13).
LAYER_NORM_EPSILON = 1e-12


def masked_layer_norm(x, mask):
    """Normalise x (B, T, D) by ONE mean/variance over all unmasked elements.

    This is bilm-tf's `do_layer_norm`: statistics are over every real token
    and feature of the whole batch (so the result depends on the batch).
    Written in `keras.ops`: the same code on every backend.
    """
    m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    n = ops.sum(m) * ops.cast(ops.shape(x)[-1], x.dtype)
    n = ops.maximum(n, 1.0)
    mean = ops.sum(x * m) / n
    variance = ops.sum(ops.square((x - mean) * m)) / n
    return (x - mean) * ops.rsqrt(variance + LAYER_NORM_EPSILON)


def _shared_mask(mask):
    """The one mask of the mixed layers. Called on a list, Keras passes one
    (possibly None) mask per layer; the layers share their tokens, so any
    one of them is it."""
    if isinstance(mask, (list, tuple)):
        return next((m for m in mask if m is not None), None)
    return mask


@keras.saving.register_keras_serializable(package="keras_elmo")
class ScalarMix(keras.layers.Layer):
    """Mixes equally shaped layers with softmax-normalised weights and a scale.

    ELMo's task-specific combination of the biLM's layers (Peters et al.,
    2018, equation 1): `gamma * sum_k softmax(w)_k * layers[k]`, with one
    trainable scalar weight `w_k` per layer (initially equal, so the mix
    starts as the plain average) and a trainable scale `gamma` (initially
    1). `ElmoLayer` holds one per output representation.

    Args:
        n_layers: int. How many layers are mixed.
        do_layer_norm: bool. Whether to normalise each layer first, with one
            mean and variance over every real token and feature of the batch
            (bilm-tf's masked layer norm; needs a mask). Defaults to `False`.
        l2_coef: float. If > 0, `l2_coef * sum(w**2)` is added to the
            layer's losses (bilm-tf's regulariser; it pulls the mix towards
            an average). Defaults to `0.0`.
        use_top_only: bool. Whether to ignore the weights and return
            `gamma * layers[-1]` (the weights then do not train). Defaults to
            `False`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        layers: a list of `n_layers` tensors of the same shape, e.g.
            `(batch, T, D)`.
        mask: bool tensor `(batch, T)` or `None` (or one per layer, as Keras
            passes them; the layers share their tokens). Required with
            `do_layer_norm=True`. Defaults to `None`.

    Returns:
        The mixed tensor, of the layers' shape; it carries the mask on.

    Example:

    >>> import numpy as np
    >>> import keras_elmo
    >>> mix = keras_elmo.ScalarMix(n_layers=2)
    >>> layers = [np.full((1, 2, 3), 1.0, "float32"), np.full((1, 2, 3), 3.0, "float32")]
    >>> np.round(mix(layers).numpy(), 4)  # equal weights: (1 + 3) / 2
    array([[[2., 2., 2.],
            [2., 2., 2.]]], dtype=float32)
    >>> _ = mix.scalar_weights.assign([0.0, np.log(3.0)])  # softmax: [1/4, 3/4]
    >>> np.round(mix(layers).numpy(), 4)  # 1/4 * 1 + 3/4 * 3
    array([[[2.5, 2.5, 2.5],
            [2.5, 2.5, 2.5]]], dtype=float32)

    Reference:
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL.
    """

    def __init__(self, n_layers, do_layer_norm=False, l2_coef=0.0, use_top_only=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers <= 0:
            raise ValueError(f"ScalarMix: n_layers must be a positive integer, got {n_layers!r}.")
        if not l2_coef >= 0:
            raise ValueError(f"ScalarMix: l2_coef must be >= 0, got {l2_coef!r}.")
        self.n_layers = n_layers
        self.do_layer_norm = bool(do_layer_norm)
        self.l2_coef = float(l2_coef)
        self.use_top_only = bool(use_top_only)
        self.supports_masking = True

    def build(self, input_shape=None):
        regularizer = keras.regularizers.L2(self.l2_coef) if self.l2_coef > 0 else None
        # bilm-tf adds 1/n_layers before the softmax; with the equal (zero)
        # initialisation that constant cancels, so the weights start at 0.
        self.scalar_weights = self.add_weight(
            name="scalar_weights",
            shape=(self.n_layers,),
            initializer="zeros",
            regularizer=None if self.use_top_only else regularizer,
            trainable=not self.use_top_only,
        )
        self.gamma = self.add_weight(name="gamma", shape=(1,), initializer="ones")
        self.built = True

    def _check_count(self, layers):
        if len(layers) != self.n_layers:
            raise ValueError(f"ScalarMix expects {self.n_layers} layers, got {len(layers)}.")

    def call(self, layers, mask=None):
        self._check_count(layers)
        mask = _shared_mask(mask)
        if self.do_layer_norm and mask is None:
            raise ValueError("ScalarMix(do_layer_norm=True) needs a mask.")
        if self.do_layer_norm:
            layers = [masked_layer_norm(x, mask) for x in layers]
        if self.use_top_only:
            return self.gamma * layers[-1]
        weights = ops.softmax(ops.convert_to_tensor(self.scalar_weights), axis=-1)
        mixed = weights[0] * layers[0]
        for k in range(1, self.n_layers):
            mixed = mixed + weights[k] * layers[k]
        return self.gamma * mixed

    def compute_mask(self, layers, mask=None):
        return _shared_mask(mask)

    def compute_output_shape(self, input_shape):
        # One shape per mixed layer; they are equal, and so is the mix's.
        self._check_count(input_shape)
        return tuple(input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_layers": self.n_layers,
                "do_layer_norm": self.do_layer_norm,
                "l2_coef": self.l2_coef,
                "use_top_only": self.use_top_only,
            }
        )
        return config
