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
"""

import keras
import tensorflow as tf

from keras_elmo.layers.lstm import ProjectedLSTM


@keras.saving.register_keras_serializable(package="keras_elmo")
class BidirectionalLM(keras.layers.Layer):
    """Token vectors (B, T, P) + mask (B, T) -> (outputs, final_state).

    outputs: a list of (B, T, 2P), one per layer, `[forward, backward]`.
    final_state: (c (n_layers, 2, B, units), h (n_layers, 2, B, P)), the
    state after each row's last real step in each direction's own order.
    An explicit `initial_state` of the same layout overrides the stored one.
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
        max_batch_size=128,
        matmul_dtype="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(n_layers, int) or n_layers <= 0:
            raise ValueError(
                f"BidirectionalLM: n_layers must be a positive integer, got {n_layers!r}."
            )
        if stateful and (not isinstance(max_batch_size, int) or max_batch_size <= 0):
            raise ValueError(
                f"BidirectionalLM: max_batch_size must be a positive integer, "
                f"got {max_batch_size!r}."
            )
        self.units = units
        self.projection_dim = projection_dim
        self.n_layers = n_layers
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        self.use_skip_connections = bool(use_skip_connections)
        self.stateful = bool(stateful)
        self.max_batch_size = max_batch_size
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
            n = self.max_batch_size
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
        mask = tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        batch = tf.shape(inputs)[0]
        if self.stateful:
            tf.debugging.assert_less_equal(
                batch,
                self.max_batch_size,
                message=(
                    "keras_elmo: stateful batch is larger than "
                    f"max_batch_size={self.max_batch_size}"
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

    def _store_state(self, final_state, batch):
        new_c, new_h = final_state  # (L, 2, B, D), (L, 2, B, P)
        self.state_c.assign(tf.concat([new_c, self.state_c[:, :, batch:]], axis=2))
        self.state_h.assign(tf.concat([new_h, self.state_h[:, :, batch:]], axis=2))

    def reset_states(self):
        """Set every row of the carried state back to the stored initial state."""
        if not self.stateful:
            return
        self.state_c.assign(tf.broadcast_to(self.initial_c[:, :, None, :], self.state_c.shape))
        self.state_h.assign(tf.broadcast_to(self.initial_h[:, :, None, :], self.state_h.shape))

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
                "max_batch_size": self.max_batch_size,
                "matmul_dtype": self.matmul_dtype,
            }
        )
        return config
