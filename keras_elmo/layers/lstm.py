"""The LSTM with output projection and clipping (TF1 `LSTMCell(num_proj=...)`).

One `ProjectedLSTM` layer holds the weights of one stacked layer for several
independent directions (ELMo: forward and backward) and advances all of them
in the same time step with batched matmuls. Per direction and step:

    z = x W_x + h_prev W_h + B          # the published W_0 is [W_x; W_h]
    i, j, f, o = split(z, 4)            # TF1 gate order
    c = sigmoid(f + 1) * c_prev + sigmoid(i) * tanh(j)   # forget bias 1.0, not in B
    c = clip(c, cell_clip)
    h = clip((sigmoid(o) * tanh(c)) W_P, proj_clip)

`x W_x + B` does not depend on the recurrence, so it is computed for many
time steps at once in one large matmul (a chunk of CHUNK_ROWS positions);
each step only does the two small matmuls of the recurrence. Padding steps
keep the previous state and emit zeros.

Two implementations compute this: `run_packed` in TensorFlow (the TensorFlow
backend's fast path: packed sequences, chunks, the feature-major layout) and
`run_masked` in `keras.ops` (every backend: a masked recurrence over all T
steps with `keras.ops.scan`, static shapes, jittable by JAX and
differentiable by torch); `keras_elmo.layers.backend_path` chooses.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_elmo import cpu
from keras_elmo.layers import backend_path
from keras_elmo.options import validate_matmul_dtype

# TF1's LSTMCell adds this to the forget gate at run time; it is not in B.
FORGET_BIAS = 1.0
# Layers whose recurrent weight (4D x P) has at least this many entries store
# their weights feature-major (see `run_packed`): with oneDNN the published
# 4096/512 size (2**23) gains at batch 32-128 and loses a little at batch 1,
# while the 2048/256 and 1024/128 sizes only lose (benchmarks/README.md, "What
# was optimized", item 5, has the measurements). Either layout gives the
# same numbers.
FEATURE_MAJOR_MIN_RECURRENT = 2**22
# The input-side gate pre-activations (x W_x + B) are computed for this many
# packed positions at a time (a chunk holds < 2 * CHUNK_ROWS), not for the
# whole input at once: their working memory (4D floats per position and
# direction, 128 KiB per token for the published size) then stays bounded
# instead of growing with the input. A time step wider than this is cut into
# blocks of at most CHUNK_ROWS rows. Large enough that the input-side matmul
# keeps its rate (see benchmarks/memory_per_token.py for the numbers).
CHUNK_ROWS = 512


def run_packed(
    inputs,
    mask,
    kernel,
    bias,
    w_rec,
    w_proj,
    c0,
    h0,
    cell_clip,
    proj_clip,
    n_dir,
    matmul_dtype=None,
    feature_major=False,
    chunk_rows=None,
):
    """The whole layer on real (mask=True) positions only, as a packed sequence.

    inputs: (n_dir, B, T, in); mask: (B, T) bool, any pattern; c0: (n_dir, B,
    D); h0: (n_dir, B, P); n_dir a Python int (the directions are unrolled).
    Weights, batch-major: kernel (n_dir, in, 4D), w_rec (n_dir, P, 4D),
    w_proj (n_dir, D, P); feature-major (`feature_major=True`): each of them
    transposed. bias: (n_dir, 4D). Returns outputs (n_dir, B, T, P), zero at
    masked positions, and the final (c, h). `matmul_dtype` ("bfloat16" /
    "float16", None: float32) is the dtype of the matmuls' operands only;
    their results, the gates, the cell state, the clipping and the outputs
    stay float32. `chunk_rows` (None: CHUNK_ROWS) bounds the positions per
    input-side chunk and the rows per block.

    No work is spent on padding: the input-side matmul runs on the N real
    positions only (gathered in time-major order, so step t's rows are one
    contiguous range), and step t runs its recurrent and projection matmuls
    only on the rows that are real at t. The input side runs chunk by chunk
    (CHUNK_ROWS positions) inside the time loop, so that its (N, 4D) result
    never exists whole: working memory grows with the outputs only. With sentences of mixed length a
    batch is mostly padding at its late steps (batch 32 of 10-40 tokens:
    ~40% of all positions).

    Feature-major computes W^T @ x^T -> (4D, n) instead of x @ W: with oneDNN
    on CPU that ran about twice as fast for the published full size's input
    side and recurrence, but slower for one row and for small weights (see
    FEATURE_MAJOR_MIN_RECURRENT; benchmarks/README.md has the rates). The
    gates are then row blocks of a (4D, n) tile; the state stays (B, .) so
    that rows can be gathered and scattered, and only the per-step c tiles
    and h outputs are transposed.
    The directions are unrolled into plain 2-D matmuls: a BatchMatMul over a
    batch axis of 2 ran much slower than two MatMuls of the same shapes
    (benchmarks/README.md, "What was optimized", item 3).
    """

    low_precision = matmul_dtype is not None
    # Which layout the step computes in. float32 with W^T stored runs
    # feature-major (see above). The lower-precision path runs batch-major
    # whatever the stored layout, reading stored W^T through `transpose_b`:
    # with oneDNN's bfloat16 kernels (AVX512_BF16) that was the fastest form
    # of the recurrent step, and it needs no per-step transposes
    # (benchmarks/README.md, "Lower precision: how it got its speed").
    step_feature_major = feature_major and not low_precision
    # h (state and outputs) is held in the matmul dtype: it is the output of
    # the projection matmul, so it is exactly representable there, and the
    # next step's matmul reads it without a cast. One cast per step remains
    # on each side of the gates: z to float32, the gated output to matmul_dtype.
    h_dtype = tf.as_dtype(matmul_dtype) if low_precision else h0.dtype
    if low_precision:  # cast each weight once per call, not per step
        kernel, w_rec, w_proj = (tf.cast(w, matmul_dtype) for w in (kernel, w_rec, w_proj))
        inputs = tf.cast(inputs, matmul_dtype)
    # back from the matmul dtype to the state's (float32 inside ElmoLayer)
    to_float = (lambda t: tf.cast(t, c0.dtype)) if low_precision else (lambda t: t)
    chunk_rows = chunk_rows or CHUNK_ROWS
    batch = tf.shape(inputs)[1]
    mask_tm = tf.transpose(mask)  # (T, B)
    steps = tf.shape(mask_tm)[0]
    counts = tf.reduce_sum(tf.cast(mask_tm, tf.int32), axis=1)  # real rows per step
    offsets = tf.cumsum(counts, exclusive=True)
    positions = tf.cast(tf.where(mask_tm), tf.int32)  # (N, 2) [t, b], time-major
    batch_rows = positions[:, 1:]  # (N, 1): the batch row of each packed position
    packed_inputs = [
        tf.gather_nd(tf.transpose(inputs[d], [1, 0, 2]), positions) for d in range(n_dir)
    ]  # n_dir x (N, in)

    # Blocks: each step's real rows, cut into runs of at most chunk_rows (a
    # step wider than that, e.g. thousands of one-word sentences, takes several
    # blocks; its rows are independent of each other). Packed positions are
    # time-major, so block b is the contiguous range [start[b], end[b]).
    per_step = tf.where(counts > 0, (counts - 1) // chunk_rows + 1, 0)
    n_blocks = tf.reduce_sum(per_step)
    block_step = tf.repeat(tf.range(steps), per_step)
    within = tf.range(n_blocks) - tf.gather(tf.cumsum(per_step, exclusive=True), block_step)
    block_start = tf.gather(offsets, block_step) + within * chunk_rows
    step_end = tf.gather(offsets + counts, block_step)
    block_end = block_start + tf.minimum(step_end - block_start, chunk_rows)
    # Chunks: the blocks that start in the same chunk_rows-sized range of
    # positions share one input-side matmul (< 2 * chunk_rows rows).
    bucket = block_start // chunk_rows
    previous = tf.pad(bucket, [[1, 0]], constant_values=-1)[:-1]
    chunk_first = tf.cast(tf.where(tf.not_equal(bucket, previous))[:, 0], tf.int32)
    chunk_stop = tf.concat([chunk_first[1:], [n_blocks]], 0)
    n_chunks = tf.shape(chunk_first)[0]

    d_proj = tf.shape(h0)[-1]
    outputs = tf.TensorArray(
        h_dtype,
        size=n_blocks + 1,
        infer_shape=False,
        element_shape=tf.TensorShape([None, n_dir, h0.shape[-1]]),
    )
    # An empty last element keeps `concat` valid when there are no blocks.
    outputs = outputs.write(n_blocks, tf.zeros([0, n_dir, d_proj], h_dtype))

    def input_side(d, x):
        if step_feature_major:
            return tf.matmul(kernel[d], x, transpose_b=True) + bias[d][:, None]  # (4D, n)
        if feature_major:  # W^T @ x^T ran fastest for this shape; one transpose per chunk
            return to_float(tf.transpose(tf.matmul(kernel[d], x, transpose_b=True))) + bias[d]
        return to_float(tf.matmul(x, kernel[d])) + bias[d]  # (n, 4D)

    def step(d, pre, h_prev, c_prev):
        """One direction's step on the gathered rows; `pre` their x W_x + B."""
        if step_feature_major:
            z = pre + tf.matmul(w_rec[d], h_prev, transpose_b=True)  # (4D, n)
            gate_axis, c_prev = 0, tf.transpose(c_prev)
        else:
            z = pre + to_float(tf.matmul(h_prev, w_rec[d], transpose_b=feature_major))  # (n, 4D)
            gate_axis = 1
        # TF1's gate order i, j, f, o along the 4D axis.
        i, j, f, o = tf.split(z, 4, axis=gate_axis)
        c_d = tf.sigmoid(f + FORGET_BIAS) * c_prev + tf.sigmoid(i) * tf.tanh(j)
        if cell_clip is not None:
            c_d = tf.clip_by_value(c_d, -cell_clip, cell_clip)
        gated = tf.sigmoid(o) * tf.tanh(c_d)
        if step_feature_major:
            h_d = tf.transpose(tf.matmul(w_proj[d], gated))  # (n, P)
            c_d = tf.transpose(c_d)
        else:
            gated = tf.cast(gated, h_dtype)
            h_d = tf.matmul(gated, w_proj[d], transpose_b=feature_major)  # (n, P)
        if proj_clip is not None:
            # (exact in the matmul dtype too: a bound is a bfloat16/float16 number)
            h_d = tf.clip_by_value(h_d, -proj_clip, proj_clip)
        return c_d, h_d

    def chunk_body(k, c, h, outputs):
        first, stop = chunk_first[k], chunk_stop[k]
        low, high = block_start[first], block_end[stop - 1]
        pre = [input_side(d, packed_inputs[d][low:high]) for d in range(n_dir)]

        def block_body(b, c, h, outputs):
            start, end = block_start[b], block_end[b]
            rows = batch_rows[start:end]  # (n, 1) the batch rows of block b
            span = slice(start - low, end - low)  # block b's part of `pre`
            new_c, new_h = [], []
            for d in range(n_dir):
                pre_d = pre[d][:, span] if step_feature_major else pre[d][span]
                c_d, h_d = step(d, pre_d, tf.gather_nd(h[d], rows), tf.gather_nd(c[d], rows))
                new_c.append(c_d)
                new_h.append(h_d)
            outputs = outputs.write(b, tf.stack(new_h, axis=1))
            c = tuple(tf.tensor_scatter_nd_update(c[d], rows, new_c[d]) for d in range(n_dir))
            h = tuple(tf.tensor_scatter_nd_update(h[d], rows, new_h[d]) for d in range(n_dir))
            return b + 1, c, h, outputs

        _, c, h, outputs = tf.while_loop(
            lambda b, *_: b < stop, block_body, (first, c, h, outputs), parallel_iterations=1
        )
        return k + 1, c, h, outputs

    _, c, h, outputs = tf.while_loop(
        lambda k, *_: k < n_chunks,
        chunk_body,
        (
            tf.constant(0),
            tuple(tf.unstack(c0, num=n_dir)),
            tuple(tf.unstack(tf.cast(h0, h_dtype), num=n_dir)),
            outputs,
        ),
        parallel_iterations=1,
    )
    packed = to_float(outputs.concat())  # (N, n_dir, P)
    dense = tf.scatter_nd(positions, packed, tf.stack([steps, batch, n_dir, d_proj]))
    h = tf.stack(h)
    if low_precision:  # a row with no real step keeps its initial h exactly
        ran = tf.reduce_any(mask, axis=1)[None, :, None]
        h = tf.where(ran, to_float(h), h0)
    return tf.transpose(dense, [2, 1, 0, 3]), tf.stack(c), h


_run_packed_graph = tf.function(run_packed, reduce_retracing=True)


def run_masked(
    inputs,
    mask,
    kernel,
    bias,
    w_rec,
    w_proj,
    c0,
    h0,
    cell_clip,
    proj_clip,
    matmul_dtype=None,
    feature_major=False,
):
    """The whole layer in `keras.ops`: a masked recurrence over every time step.

    The arguments and results are `run_packed`'s (the directions are a batch
    axis here). Static shapes throughout: the input side `x W_x + B` for all
    positions in one matmul, then `keras.ops.scan` over the T steps, where a
    masked (padding) step keeps each row's state and emits zeros, so the
    final state is each row's after its last real step, whatever the mask's
    pattern. JAX compiles it once per input shape; torch differentiates it.
    `matmul_dtype` rounds the matmuls' operands only, as in `run_packed`.
    """
    if feature_major:  # stored W^T: back to W (x @ W below)
        kernel, w_rec, w_proj = (ops.swapaxes(w, 1, 2) for w in (kernel, w_rec, w_proj))
    state_dtype = c0.dtype
    if matmul_dtype is None:

        def low(t):
            return t

        def back(t):
            return t
    else:

        def low(t):
            return ops.cast(t, matmul_dtype)

        def back(t):
            return ops.cast(t, state_dtype)

    kernel, w_rec, w_proj = low(kernel), low(w_rec), low(w_proj)
    # (n_dir, B, T, in) @ (n_dir, 1, in, 4D): every position's input side at once.
    pre = back(ops.matmul(low(inputs), ops.expand_dims(kernel, 1)))
    pre = pre + ops.expand_dims(ops.expand_dims(bias, 1), 1)
    pre = ops.transpose(pre, (2, 0, 1, 3))  # time-major (T, n_dir, B, 4D)
    mask_tm = ops.transpose(ops.cast(mask, "bool"))  # (T, B)

    def step(carry, xs):
        c_prev, h_prev = carry
        pre_t, real = xs
        z = pre_t + back(ops.matmul(low(h_prev), w_rec))  # (n_dir, B, 4D)
        # TF1's gate order i, j, f, o along the 4D axis.
        i, j, f, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f + FORGET_BIAS) * c_prev + ops.sigmoid(i) * ops.tanh(j)
        if cell_clip is not None:
            c = ops.clip(c, -cell_clip, cell_clip)
        h = back(ops.matmul(low(ops.sigmoid(o) * ops.tanh(c)), w_proj))
        if proj_clip is not None:
            h = ops.clip(h, -proj_clip, proj_clip)
        real = real[None, :, None]
        out = ops.where(real, h, ops.zeros_like(h))
        carry = (ops.where(real, c, c_prev), ops.where(real, h, h_prev))
        # Keras's TensorFlow scan wants the per-step outputs shaped as the
        # carry: there c rides along (and is dropped below).
        return carry, ((carry[0], out) if tf_scan else out)

    tf_scan = keras.backend.backend() == "tensorflow"
    (c, h), outputs = ops.scan(step, (c0, ops.cast(h0, state_dtype)), (pre, mask_tm))
    if tf_scan:
        outputs = outputs[1]
    return ops.transpose(outputs, (1, 2, 0, 3)), c, h


_jax_compiled = []  # the jitted run_masked, made on first eager JAX use


def _run_masked_eager_jax(inputs, mask, *weights_and_state, static):
    """`run_masked` compiled once per (bucketed) shape for eager JAX calls."""
    if not _jax_compiled:
        _jax_compiled.append(backend_path.jax_jit(run_masked, static_argnums=(8, 9, 10, 11)))
    steps = inputs.shape[2]
    extra = backend_path.time_bucket(steps) - steps
    if extra:
        inputs = ops.pad(inputs, [[0, 0], [0, 0], [0, extra], [0, 0]])
        mask = ops.pad(ops.cast(mask, "bool"), [[0, 0], [0, extra]])
    outputs, c, h = _jax_compiled[0](inputs, mask, *weights_and_state, *static)
    return outputs[:, :, :steps], c, h


def _transposed(initializer):
    """Draws a (d, a, b) weight as (d, b, a) and returns its transpose."""

    def init(shape, dtype=None):
        d, a, b = shape
        return ops.transpose(initializer((d, b, a), dtype=dtype), (0, 2, 1))

    return init


@keras.saving.register_keras_serializable(package="keras_elmo")
class ProjectedLSTM(keras.layers.Layer):
    """One LSTM layer with an output projection and clipping, for several directions at once.

    The LSTM cell of bilm-tf (TF1's `LSTMCell(num_proj=...)`, the LSTMP of
    Sak et al., 2014): per step `z = x W_x + h_prev W_h + B`, gates
    `i, j, f, o`, `c = sigmoid(f + 1) * c_prev + sigmoid(i) * tanh(j)`
    clipped to `cell_clip`, `h = (sigmoid(o) * tanh(c)) W_P` clipped to
    `proj_clip` (the module docstring has the details). One layer holds the
    weights of `n_directions` independent directions (ELMo: forward and
    backward) and advances all of them in the same time step; each direction
    reads its own slice of the inputs, in its own time order. Padding steps
    keep the previous state and output zeros. `BidirectionalLM` holds one
    per layer.

    Args:
        units: int. The cell size `D`.
        projection_dim: int. `P`, the size of the projected output `h`.
        input_dim: int. The size of the inputs' last axis.
        n_directions: int. How many independent directions. Defaults to `2`.
        cell_clip: float or `None`. Clip the cell state to
            `[-cell_clip, cell_clip]`. Defaults to `None` (no clipping).
        proj_clip: float or `None`. Clip `h` likewise. Defaults to `None`.
        matmul_dtype: str. `"float32"`, `"bfloat16"` or `"float16"`: the
            operand dtype of the matmuls; gates, cell state, clipping and
            outputs stay float32. Defaults to `"float32"`.
        feature_major: bool or `None`. The weights' layout (`W` or `W^T`);
            it changes speed, not results, and is stored in the config so
            that saved weights come back in their layout. Defaults to `None`
            (chosen by size, see `FEATURE_MAJOR_MIN_RECURRENT`).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`,
            `trainable`).

    Call arguments:
        inputs: float `(n_directions, B, T, input_dim)`.
        mask: bool `(B, T)`, `True` at real positions (any pattern).
        initial_state: `(c, h)`, `c` `(n_directions, B, units)` and `h`
            `(n_directions, B, projection_dim)`.

    Returns:
        A pair `(outputs, (c, h))`: `outputs` `(n_directions, B, T,
        projection_dim)`, zero at masked positions, and the final state,
        each row's after its last real step.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_elmo.layers.lstm import ProjectedLSTM
    >>> lstm = ProjectedLSTM(units=16, projection_dim=8, input_dim=8, cell_clip=3.0)
    >>> x = tf.random.normal((2, 3, 5, 8))  # (directions, batch, steps, input_dim)
    >>> mask = tf.sequence_mask([5, 2, 4], maxlen=5)
    >>> state = (tf.zeros((2, 3, 16)), tf.zeros((2, 3, 8)))
    >>> outputs, (c, h) = lstm(x, mask, state)
    >>> tuple(outputs.shape), tuple(c.shape), tuple(h.shape)
    ((2, 3, 5, 8), (2, 3, 16), (2, 3, 8))

    One step by hand: with zero weights every gate's pre-activation is 0, so
    `c = sigmoid(0 + 1) * c_prev` (the forget bias 1) and
    `h = sigmoid(0) * tanh(c) * W_P`:

    >>> one = ProjectedLSTM(units=1, projection_dim=1, input_dim=1, n_directions=1)
    >>> one.build()
    >>> for weight in one.weights:
    ...     _ = weight.assign(tf.zeros_like(weight))
    >>> _ = one.projection.assign([[[1.0]]])
    >>> state = (tf.ones((1, 1, 1)), tf.zeros((1, 1, 1)))  # c_prev = 1
    >>> _, (c, h) = one(tf.zeros((1, 1, 1, 1)), tf.ones((1, 1), bool), state)
    >>> round(float(c[0, 0, 0]), 4), round(float(h[0, 0, 0]), 4)  # 0.5 * tanh(0.7311)
    (0.7311, 0.3119)

    Reference:
        - [Sak et al., 2014](https://arxiv.org/abs/1402.1128), "Long
          Short-Term Memory Based Recurrent Neural Network Architectures for
          Large Vocabulary Speech Recognition".
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL.
    """

    def __init__(
        self,
        units,
        projection_dim,
        input_dim,
        n_directions=2,
        cell_clip=None,
        proj_clip=None,
        matmul_dtype="float32",
        feature_major=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("units", units),
            ("projection_dim", projection_dim),
            ("input_dim", input_dim),
            ("n_directions", n_directions),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"ProjectedLSTM: {name} must be a positive integer, got {value!r}."
                )
        for name, value in (("cell_clip", cell_clip), ("proj_clip", proj_clip)):
            if value is not None and not value > 0:
                raise ValueError(f"ProjectedLSTM: {name} must be positive or None, got {value!r}.")
        self.units = units
        self.projection_dim = projection_dim
        self.input_dim = input_dim
        self.matmul_dtype = validate_matmul_dtype(matmul_dtype, "ProjectedLSTM")
        if feature_major is None:
            feature_major = 4 * units * projection_dim >= FEATURE_MAJOR_MIN_RECURRENT
        self.feature_major = bool(feature_major)
        self.n_directions = n_directions
        self.cell_clip = None if cell_clip is None else float(cell_clip)
        self.proj_clip = None if proj_clip is None else float(proj_clip)

    def build(self, input_shape=None):
        if self.matmul_dtype == "bfloat16":
            cpu.warn_if_no_bfloat16_units()
        d, gates = self.n_directions, 4 * self.units
        shapes = {
            "kernel": (self.input_dim, gates),
            "recurrent_kernel": (self.projection_dim, gates),
            "projection": (self.units, self.projection_dim),
        }
        init = keras.initializers.GlorotUniform()
        if self.feature_major:
            # Feature-major layout, W^T (see `run_packed`); conversion.py
            # transposes from and to the published W. New weights are drawn
            # in W's layout and transposed, so that a seed gives the same
            # model in either layout.
            shapes = {name: shape[::-1] for name, shape in shapes.items()}
            init = _transposed(init)
        self.kernel = self.add_weight(name="kernel", shape=(d, *shapes["kernel"]), initializer=init)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(d, *shapes["recurrent_kernel"]), initializer=init
        )
        self.bias = self.add_weight(name="bias", shape=(d, gates), initializer="zeros")
        self.projection = self.add_weight(
            name="projection", shape=(d, *shapes["projection"]), initializer=init
        )
        self.built = True

    def call(self, inputs, mask, initial_state):
        c0, h0 = initial_state
        if not backend_path.use_tf_kernels():
            inputs = ops.convert_to_tensor(inputs)
            args = [
                ops.convert_to_tensor(t)
                for t in (self.kernel, self.bias, self.recurrent_kernel, self.projection, c0, h0)
            ]
            static = (
                self.cell_clip,
                self.proj_clip,
                None if self.matmul_dtype == "float32" else self.matmul_dtype,
                self.feature_major,
            )
            if backend_path.eager_jax(inputs):
                outputs, c, h = _run_masked_eager_jax(inputs, mask, *args, static=static)
            else:
                outputs, c, h = run_masked(inputs, mask, *args, *static)
            return outputs, (c, h)
        # Eager callers get the loop as one compiled graph; inside a graph
        # (tf.function, fit, export) it is built inline.
        run = _run_packed_graph if tf.executing_eagerly() else run_packed
        outputs, c, h = run(
            inputs,
            tf.cast(mask, tf.bool),
            tf.convert_to_tensor(self.kernel),
            tf.convert_to_tensor(self.bias),
            tf.convert_to_tensor(self.recurrent_kernel),
            tf.convert_to_tensor(self.projection),
            c0,
            h0,
            self.cell_clip,
            self.proj_clip,
            self.n_directions,
            None if self.matmul_dtype == "float32" else self.matmul_dtype,
            self.feature_major,
            CHUNK_ROWS,  # read per call, so that a test or benchmark can set it
        )
        return outputs, (c, h)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "projection_dim": self.projection_dim,
                "input_dim": self.input_dim,
                "n_directions": self.n_directions,
                "cell_clip": self.cell_clip,
                "proj_clip": self.proj_clip,
                "matmul_dtype": self.matmul_dtype,
                "feature_major": self.feature_major,
            }
        )
        return config
