"""The bidirectional LM: a stack of forward and backward projected LSTMs.

The backward direction runs on each sentence reversed *within its own length*
(padding stays at the end), so both directions share one time loop and one
mask. Between layers everything stays in each direction's own time order; the
backward outputs are flipped back only when they are returned.

Initial state: every call starts from a stored state, `initial_c`/`initial_h`
(zeros unless `warm_up` set them), so outputs never depend on batch-mates.
With `stateful=True` the final state of each batch row is kept in variables
and becomes the initial state of the same row in the next call, as bilm-tf
and AllenNLP do; rows beyond the current batch keep their old state.

On the TensorFlow backend the biLM runs TensorFlow's ops (`tf.reverse_sequence`
and the LSTM's packed kernels); elsewhere (or with
`keras_elmo.layers.backend_path`'s portable switch) the same model in
`keras.ops` with static shapes (`call_portable`).
"""

import keras
import tensorflow as tf
from keras import ops

from keras_elmo.layers import backend_path
from keras_elmo.layers.lstm import ProjectedLSTM


def reverse_within_lengths(x, lengths):
    """Each row of `x` (B, T, ...) reversed within its first `lengths[b]`
    positions, the rest left in place (`tf.reverse_sequence` in `keras.ops`)."""
    steps = ops.shape(x)[1]
    position = ops.expand_dims(ops.arange(steps, dtype="int32"), 0)  # (1, T)
    length = ops.expand_dims(ops.cast(lengths, "int32"), 1)  # (B, 1)
    source = ops.where(position < length, length - 1 - position, position)  # (B, T)
    for _ in range(len(x.shape) - 2):
        source = ops.expand_dims(source, -1)
    return ops.take_along_axis(x, source, axis=1)


@keras.saving.register_keras_serializable(package="keras_elmo")
class BidirectionalLM(keras.layers.Layer):
    """ELMo's bidirectional language model: stacked forward and backward LSTMs.

    `n_layers` layers of `ProjectedLSTM`, each running the forward and the
    backward direction in the same time loop (the backward one on each
    sentence reversed within its own length), with residual connections
    between layers when `use_skip_connections`. `ElmoLayer` holds one as
    `elmo.bilm` (built with `BidirectionalLM.from_options`) and feeds it the
    token vectors with `<S>` and `</S>` around each sentence.

    Every call starts from a stored initial state, `initial_c`/`initial_h`
    (zeros unless `ElmoLayer.warm_up` set them), so that outputs never
    depend on batch-mates. With `stateful=True` each batch row's final
    state is kept and becomes the same row's initial state in the next call,
    as bilm-tf and AllenNLP do.

    Args:
        units: int. The LSTM cell size `D` (options `lstm.dim`).
        projection_dim: int. `P`: the size of each direction's output, and
            of the input (options `lstm.projection_dim`).
        n_layers: int. How many bidirectional layers.
        cell_clip: float or `None`. Clip the cell state to
            `[-cell_clip, cell_clip]`. Defaults to `None` (no clipping).
        proj_clip: float or `None`. Clip the projected output likewise.
            Defaults to `None` (no clipping).
        use_skip_connections: bool. Whether layers after the first add their
            input to their output. Defaults to `True`.
        stateful: bool. Whether each row's final state carries into the
            next call (`reset_states()` starts over). Defaults to `False`.
        state_rows: int. Rows of carried state of a stateful layer (the
            largest batch it accepts). Defaults to `128`. The 0.3 name
            `max_batch_size` is still accepted.
        matmul_dtype: str. `"float32"`, `"bfloat16"` or `"float16"`: the
            operand dtype of the LSTM matmuls (see `ElmoLayer`'s
            `matmul_dtype`). Defaults to `"float32"`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`,
            `trainable`).

    Call arguments:
        inputs: float token vectors `(B, T, P)`.
        mask: bool `(B, T)`, `True` at real positions.
        initial_state: `None`, or `(c, h)` with `c` `(n_layers, 2, B, D)` and
            `h` `(n_layers, 2, B, P)` (direction 0 forward, 1 backward),
            which overrides the stored state. Defaults to `None`.

    Returns:
        A pair `(outputs, final_state)`: `outputs` a list of `n_layers`
        tensors `(B, T, 2P)`, `[forward, backward]` concatenated, zero at
        padding; `final_state` `(c, h)` in the layout of `initial_state`,
        each row's state after its last real step in each direction's own
        order.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_elmo.layers.bilm import BidirectionalLM
    >>> bilm = BidirectionalLM(units=16, projection_dim=8, n_layers=2, cell_clip=3.0)
    >>> x = tf.random.normal((2, 5, 8))
    >>> mask = tf.sequence_mask([5, 3], maxlen=5)  # the second row has 3 tokens
    >>> outputs, (c, h) = bilm(x, mask)
    >>> [tuple(out.shape) for out in outputs], tuple(c.shape), tuple(h.shape)
    ([(2, 5, 16), (2, 5, 16)], (2, 2, 2, 16), (2, 2, 2, 8))
    >>> float(np.abs(outputs[-1][1, 3:]).max())  # padding
    0.0

    Reference:
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL (the biLM of ELMo).
        - [Jozefowicz et al., 2016](https://arxiv.org/abs/1602.02410),
          "Exploring the Limits of Language Modeling" (the projected-LSTM
          language model ELMo's biLM follows).
    """

    def __init__(
        self,
        units,
        projection_dim,
        n_layers,
        cell_clip=None,
        proj_clip=None,
        use_skip_connections=True,
        stateful=False,
        state_rows=128,
        matmul_dtype="float32",
        **kwargs,
    ):
        if "max_batch_size" in kwargs:  # the 0.3 name (configs saved then carry it)
            state_rows = kwargs.pop("max_batch_size")
        super().__init__(**kwargs)
        if not isinstance(n_layers, int) or n_layers <= 0:
            raise ValueError(
                f"BidirectionalLM: n_layers must be a positive integer, got {n_layers!r}."
            )
        if stateful and (
            isinstance(state_rows, bool) or not isinstance(state_rows, int) or state_rows <= 0
        ):
            raise ValueError(
                f"BidirectionalLM: state_rows must be a positive integer, got {state_rows!r}."
            )
        self.units = units
        self.projection_dim = projection_dim
        self.n_layers = n_layers
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        self.use_skip_connections = bool(use_skip_connections)
        self.stateful = bool(stateful)
        self.state_rows = state_rows
        self.matmul_dtype = matmul_dtype
        self.lstms = [
            ProjectedLSTM(
                units,
                projection_dim,
                projection_dim,
                n_directions=2,
                cell_clip=cell_clip,
                proj_clip=proj_clip,
                matmul_dtype=matmul_dtype,
                name=f"lstm_{layer}",
                dtype=self.dtype_policy,
            )
            for layer in range(n_layers)
        ]

    @classmethod
    def from_options(cls, options, **kwargs):
        """The biLM that `options["lstm"]` describes (the published `options.json` layout).

        `options` must be validated (`keras_elmo.options.validate_options`);
        `kwargs` are the runtime choices (stateful, matmul dtype, name, ...).
        """
        lstm = options["lstm"]
        return cls(
            lstm["dim"],
            lstm["projection_dim"],
            lstm["n_layers"],
            cell_clip=lstm["cell_clip"],
            proj_clip=lstm["proj_clip"],
            use_skip_connections=lstm["use_skip_connections"],
            **kwargs,
        )

    def build(self, input_shape=None):
        for lstm in self.lstms:
            lstm.build()
        shape_c = (self.n_layers, 2, self.units)
        shape_h = (self.n_layers, 2, self.projection_dim)
        self.initial_c = self.add_weight(
            name="initial_c", shape=shape_c, initializer="zeros", trainable=False
        )
        self.initial_h = self.add_weight(
            name="initial_h", shape=shape_h, initializer="zeros", trainable=False
        )
        if self.stateful:
            n = self.state_rows
            self.state_c = self.add_weight(
                name="state_c",
                shape=(self.n_layers, 2, n, self.units),
                initializer="zeros",
                trainable=False,
            )
            self.state_h = self.add_weight(
                name="state_h",
                shape=(self.n_layers, 2, n, self.projection_dim),
                initializer="zeros",
                trainable=False,
            )
        self.built = True

    def _initial_state(self, batch):
        if self.stateful:
            return self.state_c[:, :, :batch], self.state_h[:, :, :batch]
        c = tf.broadcast_to(self.initial_c[:, :, None, :], [self.n_layers, 2, batch, self.units])
        h = tf.broadcast_to(
            self.initial_h[:, :, None, :], [self.n_layers, 2, batch, self.projection_dim]
        )
        return c, h

    def call(self, inputs, mask, initial_state=None):
        if not backend_path.use_tf_kernels():
            return self.call_portable(inputs, mask, initial_state)
        mask = tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        batch = tf.shape(inputs)[0]
        if self.stateful:
            tf.debugging.assert_less_equal(
                batch,
                self.state_rows,
                message=(
                    "keras_elmo: stateful batch is larger than the carried state's "
                    f"state_rows={self.state_rows}"
                ),
            )
        if initial_state is None:
            initial_state = self._initial_state(batch)
        c0, h0 = initial_state
        backward = tf.reverse_sequence(inputs, lengths, seq_axis=1, batch_axis=0)
        x = tf.stack([inputs, backward])  # (2, B, T, P): each direction in its own order
        outputs, finals = [], []
        for layer, lstm in enumerate(self.lstms):
            out, final = lstm(x, mask, (c0[layer], h0[layer]))
            if self.use_skip_connections and layer > 0:
                # The residual goes into what the layer emits and passes up, not
                # into its recurrent state.
                out = out + x
            outputs.append(out)
            finals.append(final)
            x = out
        final_state = (tf.stack([c for c, _ in finals]), tf.stack([h for _, h in finals]))
        if self.stateful:
            self._store_state(final_state, batch)
        outputs = [
            tf.concat([out[0], tf.reverse_sequence(out[1], lengths, seq_axis=1, batch_axis=0)], -1)
            for out in outputs
        ]
        return outputs, final_state

    def call_portable(self, inputs, mask, initial_state=None):
        """`call` in `keras.ops` (every backend); the same model and results."""
        mask = ops.cast(mask, "bool")
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        batch = ops.shape(inputs)[0]
        if self.stateful and isinstance(batch, int) and batch > self.state_rows:
            raise ValueError(
                f"keras_elmo: stateful batch of {batch} is larger than the carried state's "
                f"state_rows={self.state_rows}"
            )
        if initial_state is None:
            initial_state = self._initial_state_portable(batch)
        c0, h0 = (ops.convert_to_tensor(s) for s in initial_state)
        # (2, B, T, P): each direction in its own time order.
        x = ops.stack([inputs, reverse_within_lengths(inputs, lengths)])
        outputs, finals = [], []
        for layer, lstm in enumerate(self.lstms):
            out, final = lstm(x, mask, (c0[layer], h0[layer]))
            if self.use_skip_connections and layer > 0:
                out = out + x  # into what the layer emits, not its recurrent state
            outputs.append(out)
            finals.append(final)
            x = out
        final_state = (ops.stack([c for c, _ in finals]), ops.stack([h for _, h in finals]))
        if self.stateful:
            new_c, new_h = final_state  # rows past the batch keep their state
            for var, new in ((self.state_c, new_c), (self.state_h, new_h)):
                # No gradient flows into a later call through the carried
                # state (as a TensorFlow variable assignment).
                new = ops.stop_gradient(new)
                var.assign(ops.slice_update(ops.convert_to_tensor(var), (0, 0, 0, 0), new))
        outputs = [
            ops.concatenate([out[0], reverse_within_lengths(out[1], lengths)], axis=-1)
            for out in outputs
        ]
        return outputs, final_state

    def _initial_state_portable(self, batch):
        if self.stateful:
            # Copies: the call updates the variables in place at its end, and
            # torch's backward pass still needs the values it started from.
            c = ops.copy(ops.convert_to_tensor(self.state_c)[:, :, :batch])
            h = ops.copy(ops.convert_to_tensor(self.state_h)[:, :, :batch])
            return c, h
        c = ops.broadcast_to(
            ops.expand_dims(self.initial_c, 2), (self.n_layers, 2, batch, self.units)
        )
        h = ops.broadcast_to(
            ops.expand_dims(self.initial_h, 2), (self.n_layers, 2, batch, self.projection_dim)
        )
        return c, h

    def _store_state(self, final_state, batch):
        new_c, new_h = final_state  # (L, 2, B, D), (L, 2, B, P)
        self.state_c.assign(tf.concat([new_c, self.state_c[:, :, batch:]], axis=2))
        self.state_h.assign(tf.concat([new_h, self.state_h[:, :, batch:]], axis=2))

    def reset_states(self):
        """Set every row of the carried state back to the stored initial state."""
        if not self.stateful:
            return
        initial_c = ops.expand_dims(self.initial_c, 2)
        initial_h = ops.expand_dims(self.initial_h, 2)
        self.state_c.assign(ops.broadcast_to(initial_c, self.state_c.shape))
        self.state_h.assign(ops.broadcast_to(initial_h, self.state_h.shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "projection_dim": self.projection_dim,
                "n_layers": self.n_layers,
                "cell_clip": self.cell_clip,
                "proj_clip": self.proj_clip,
                "use_skip_connections": self.use_skip_connections,
                "stateful": self.stateful,
                "state_rows": self.state_rows,
                "matmul_dtype": self.matmul_dtype,
            }
        )
        return config
