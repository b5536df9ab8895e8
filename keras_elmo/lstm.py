"""The LSTM with output projection and clipping (TF1 `LSTMCell(num_proj=...)`).

One `ProjectedLSTM` layer holds the weights of one stacked layer for several
independent directions (ELMo: forward and backward) and advances all of them
in the same time step with batched matmuls. Per direction and step:

    z = x W_x + h_prev W_h + B          # the published W_0 is [W_x; W_h]
    i, j, f, o = split(z, 4)            # TF1 gate order
    c = sigmoid(f + 1) * c_prev + sigmoid(i) * tanh(j)   # forget bias 1.0, not in B
    c = clip(c, cell_clip)
    h = clip((sigmoid(o) * tanh(c)) W_P, proj_clip)

`x W_x + B` does not depend on the recurrence, so it is computed for every
time step at once in one large matmul before the loop; the loop only does the
two small matmuls of the recurrence. Padding steps keep the previous state and
emit zeros.
"""

import keras
import tensorflow as tf

# TF1's LSTMCell adds this to the forget gate at run time; it is not in B.
FORGET_BIAS = 1.0
# Operand dtypes for the LSTM matmuls; float32 is exact, the others are the
# optional lower-precision path (state and gates stay float32).
MATMUL_DTYPES = ("float32", "bfloat16", "float16")


def run_packed(inputs, mask, kernel, bias, w_rec, w_proj, c0, h0, cell_clip, proj_clip, n_dir,
               matmul_dtype=None):
    """The whole layer on real (mask=True) positions only, as a packed sequence.

    inputs: (n_dir, B, T, in); mask: (B, T) bool, any pattern; the weights in
    the layer's output-major layout: kernel (n_dir, 4D, in), bias (n_dir, 4D),
    w_rec (n_dir, 4D, P), w_proj (n_dir, P, D); c0: (n_dir, B, D); h0:
    (n_dir, B, P); n_dir a Python int (the directions are unrolled). Returns
    outputs (n_dir, B, T, P), zero at masked positions, and the final (c, h).
    `matmul_dtype` ("bfloat16"/"float16", None: float32) is the dtype of the
    three matmuls' operands only; their results, the gates, the cell state,
    the clipping and the outputs stay float32.

    No work is spent on padding: the input-side matmul runs on the N real
    positions only (gathered in time-major order, so the columns of step t
    are one contiguous range), and step t runs its recurrent and projection
    matmuls only on the rows that are real at t. With sentences of mixed
    length a batch is mostly padding at its late steps (batch 32 of 10-40
    tokens: ~40% of all positions).

    The gate pre-activations are computed feature-major, W^T @ x^T -> (4D, n):
    with oneDNN on CPU that ran ~2x faster than x @ W for the shapes here
    (measured, 2 cores: input side 800 x 512 @ 512 x 16384: 129 vs 56 GFLOP/s;
    recurrence 16 x 512 @ 512 x 16384: 60 vs 34), and it needs W^T stored
    contiguously, hence the layout. Only the small per-step c and h tiles are
    transposed; the state stays (B, .) so rows can be gathered and scattered.
    The directions are unrolled into plain 2-D matmuls: a BatchMatMul over a
    batch axis of 2 ran ~2.5x slower than two MatMuls of the same shapes.
    """
    def matmul(weight, x, **kwargs):  # weight already in matmul_dtype
        if matmul_dtype is None:
            return tf.matmul(weight, x, **kwargs)
        return tf.cast(tf.matmul(weight, tf.cast(x, matmul_dtype), **kwargs), tf.float32)

    if matmul_dtype is not None:  # cast each weight once per call, not per step
        kernel, w_rec, w_proj = (tf.cast(w, matmul_dtype) for w in (kernel, w_rec, w_proj))
    batch = tf.shape(inputs)[1]
    mask_tm = tf.transpose(mask)  # (T, B)
    counts = tf.reduce_sum(tf.cast(mask_tm, tf.int32), axis=1)  # real rows per step
    offsets = tf.cumsum(counts, exclusive=True)
    positions = tf.cast(tf.where(mask_tm), tf.int32)  # (N, 2) [t, b], time-major
    pre = [matmul(kernel[d], tf.gather_nd(tf.transpose(inputs[d], [1, 0, 2]), positions),
                  transpose_b=True) + bias[d][:, None]
           for d in range(n_dir)]  # n_dir x (4D, N), feature-major
    steps = tf.shape(mask_tm)[0]
    d_proj = tf.shape(h0)[-1]
    outputs = tf.TensorArray(h0.dtype, size=steps + 1, infer_shape=False,
                             element_shape=tf.TensorShape([None, n_dir, h0.shape[-1]]))
    # An empty last element keeps `concat` valid when there are no steps.
    outputs = outputs.write(steps, tf.zeros([0, n_dir, d_proj], h0.dtype))

    def body(t, c, h, outputs):
        rows = tf.where(mask_tm[t])[:, :1]  # (n, 1) the batch rows real at step t
        new_c, new_h = [], []
        for d in range(n_dir):
            z = pre[d][:, offsets[t]:offsets[t] + counts[t]] + matmul(
                w_rec[d], tf.gather_nd(h[d], rows), transpose_b=True)  # (4D, n)
            # Gates are row blocks here (feature-major), in TF1's i, j, f, o order.
            i, j, f, o = tf.split(z, 4, axis=0)
            c_d = (tf.sigmoid(f + FORGET_BIAS) * tf.transpose(tf.gather_nd(c[d], rows))
                   + tf.sigmoid(i) * tf.tanh(j))  # (D, n)
            if cell_clip is not None:
                c_d = tf.clip_by_value(c_d, -cell_clip, cell_clip)
            h_d = tf.transpose(matmul(w_proj[d], tf.sigmoid(o) * tf.tanh(c_d)))  # (n, P)
            if proj_clip is not None:
                h_d = tf.clip_by_value(h_d, -proj_clip, proj_clip)
            new_c.append(tf.transpose(c_d))
            new_h.append(h_d)
        outputs = outputs.write(t, tf.stack(new_h, axis=1))
        c = tuple(tf.tensor_scatter_nd_update(c[d], rows, new_c[d]) for d in range(n_dir))
        h = tuple(tf.tensor_scatter_nd_update(h[d], rows, new_h[d]) for d in range(n_dir))
        return t + 1, c, h, outputs

    _, c, h, outputs = tf.while_loop(
        lambda t, *_: t < steps, body,
        (tf.constant(0), tuple(tf.unstack(c0, num=n_dir)), tuple(tf.unstack(h0, num=n_dir)),
         outputs),
        parallel_iterations=1,
    )
    packed = outputs.concat()  # (N, n_dir, P)
    dense = tf.scatter_nd(positions, packed, tf.stack([steps, batch, n_dir, d_proj]))
    return tf.transpose(dense, [2, 1, 0, 3]), tf.stack(c), tf.stack(h)


_run_packed_graph = tf.function(run_packed, reduce_retracing=True)


def _transposed(initializer):
    """Draws a (d, a, b) weight as (d, b, a) and returns its transpose."""
    def init(shape, dtype=None):
        d, a, b = shape
        return tf.transpose(initializer((d, b, a), dtype=dtype), [0, 2, 1])
    return init


@keras.saving.register_keras_serializable(package="keras_elmo")
class ProjectedLSTM(keras.layers.Layer):
    """One LSTM layer with projection and clipping, for `n_directions` at once.

    Call with inputs (n_dir, B, T, input_dim), mask (B, T) and an initial
    state (c (n_dir, B, units), h (n_dir, B, projection_dim)); returns the
    outputs (n_dir, B, T, projection_dim) and the final state. Each direction
    reads its own slice of the inputs in its own time order.
    """

    def __init__(self, units, projection_dim, input_dim, n_directions=2,
                 cell_clip=None, proj_clip=None, matmul_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("projection_dim", projection_dim),
                            ("input_dim", input_dim), ("n_directions", n_directions)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ProjectedLSTM: {name} must be a positive integer, got {value!r}.")
        for name, value in (("cell_clip", cell_clip), ("proj_clip", proj_clip)):
            if value is not None and not value > 0:
                raise ValueError(f"ProjectedLSTM: {name} must be positive or None, got {value!r}.")
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(
                f"ProjectedLSTM: matmul_dtype must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}.")
        self.units = units
        self.projection_dim = projection_dim
        self.input_dim = input_dim
        self.matmul_dtype = matmul_dtype
        self.n_directions = n_directions
        self.cell_clip = None if cell_clip is None else float(cell_clip)
        self.proj_clip = None if proj_clip is None else float(proj_clip)

    def build(self, input_shape=None):
        d, gates = self.n_directions, 4 * self.units
        # Output-major (transposed) layout, W^T: the loop computes W^T @ x^T
        # (see `run_packed`); the published file stores W and conversion.py
        # transposes. New weights are drawn in W's layout and transposed, so
        # a model initialised with a given seed is the same as in W's layout.
        init = _transposed(keras.initializers.GlorotUniform())
        self.kernel = self.add_weight(
            name="kernel", shape=(d, gates, self.input_dim), initializer=init)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(d, gates, self.projection_dim), initializer=init)
        self.bias = self.add_weight(name="bias", shape=(d, gates), initializer="zeros")
        self.projection = self.add_weight(
            name="projection", shape=(d, self.projection_dim, self.units), initializer=init)
        self.built = True

    def call(self, inputs, mask, initial_state):
        c0, h0 = initial_state
        # Eager callers get the loop as one compiled graph; inside a graph
        # (tf.function, fit, export) it is built inline.
        run = _run_packed_graph if tf.executing_eagerly() else run_packed
        outputs, c, h = run(
            inputs, tf.cast(mask, tf.bool), tf.convert_to_tensor(self.kernel),
            tf.convert_to_tensor(self.bias), tf.convert_to_tensor(self.recurrent_kernel),
            tf.convert_to_tensor(self.projection), c0, h0, self.cell_clip, self.proj_clip,
            self.n_directions, None if self.matmul_dtype == "float32" else self.matmul_dtype,
        )
        return outputs, (c, h)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "projection_dim": self.projection_dim,
            "input_dim": self.input_dim, "n_directions": self.n_directions,
            "cell_clip": self.cell_clip, "proj_clip": self.proj_clip,
            "matmul_dtype": self.matmul_dtype,
        })
        return config
