"""Request limits: bounds on the work that one call may ask for.

Three limits, each a positive integer or None (unbounded):

- `max_batch_size`: sentences in one request;
- `max_tokens_per_sentence`: tokens of the longest sentence; for dense
  tokens or char ids, the padded length T (the outputs hold T positions);
- `max_tokens_per_request`: the request's token positions, batch x longest
  sentence (every output holds that many vectors, and the model's working
  memory grows with it).

The export adds `max_bytes_per_request` (`EXPORT_LIMIT_NAMES`): the bytes of
the request's strings (sentences for `serving_default`, the tokens within
`sequence_len` for `tokens`), which the token limits do not see (a token of
100 KiB counts as one).

Bounds outside requests: `MAX_TOKENS_PER_LINE` (a line of the embed jobs,
`check_line_tokens`) and `MAX_STATE_ROWS` (the rows of carried state of a
stateful layer, `check_state_rows`, checked before anything is allocated).

A request over a limit fails at once with `tf.errors.InvalidArgumentError`
whose message names the limit and the request's size. The checks read
shapes and row lengths only, and the model's inputs are made to depend on
them, so no model work starts before they pass. The export
(`keras_elmo.serving.export`) and `ElmoLayer` share these checks.
"""

LIMIT_NAMES = ("max_batch_size", "max_tokens_per_sentence", "max_tokens_per_request")
# The export's limits: the layer's, and the request's bytes.
EXPORT_LIMIT_NAMES = (*LIMIT_NAMES, "max_bytes_per_request")

# The export's defaults (`keras-elmo export`): a request at these limits keeps
# the published full-size model's serving process under ~2 GB. Measured by
# benchmarks/serving_limits.py; docs/reliability.md ("The export's request
# limits, measured") has the peaks, and why 4096 token positions per request was over
# that budget, hence 2048.
SERVING_DEFAULTS = {
    "max_batch_size": 128,
    "max_tokens_per_sentence": 400,
    "max_tokens_per_request": 2048,
    # BYTES_PER_TOKEN_POSITION x max_tokens_per_request (128 KiB).
    "max_bytes_per_request": 1 << 17,
}
# The export's max_bytes_per_request when it is not given: this many bytes per
# token position allowed by max_tokens_per_request (None when that is None).
# The char CNN reads at most 50 bytes of a token (`max_characters_per_token`),
# so more only makes the server hold and scan bytes no vector depends on.
BYTES_PER_TOKEN_POSITION = 64

# Tokens of one line of `keras-elmo embed` / `beam-embed`. Token-budget
# batching (`jobs.batching`) runs a long line alone; this bounds that call:
# the shipped model's peak RSS with a line at this bound is in
# docs/performance.md ("Memory of one long line").
MAX_TOKENS_PER_LINE = 1 << 15

# Rows of carried LSTM state of a stateful layer: (n_layers x 2 x rows x
# (units + projection_dim)) floats are allocated when it is built (73.7 KB a
# row for the full-size model, so 600 MB at this bound).
MAX_STATE_ROWS = 8192


def validate_limit(name, value, who):
    """A limit argument: None or a positive integer; ValueError naming `who` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer or None, got {value!r}.")
    return value


def check_line_tokens(n_tokens, where, limit=MAX_TOKENS_PER_LINE):
    """Refuse a line of more than `limit` tokens (None: no limit): an InputError naming `where`."""
    from keras_elmo.errors import InputError

    if limit is not None and n_tokens > limit:
        raise InputError(
            f"{where} has {n_tokens} tokens, over the limit of {limit} tokens per line; "
            "split it into shorter lines."
        )


def check_state_rows(rows, who, limit=MAX_STATE_ROWS):
    """Refuse more than `limit` rows of carried state: an InputError (a ValueError) naming `who`."""
    from keras_elmo.errors import InputError

    if rows > limit:
        raise InputError(
            f"{who}: state_rows={rows} is over the limit of {limit} rows of carried state "
            "(a stateful layer allocates state for every row; give a smaller state_rows or "
            "batch size)."
        )
    return rows


def _assert_at_most(value, limit, name, what):
    """An Assert op for `value <= limit`; in eager mode raises at once instead (returns None)."""
    import tensorflow as tf

    template = f"keras_elmo: the request has {{}} {what}, over the limit {name}={limit}."
    if tf.executing_eagerly():
        if int(value) > limit:
            raise tf.errors.InvalidArgumentError(None, None, template.format(int(value)))
        return None
    # Integers only in the message: TensorFlow's error formatting must never
    # have to decode request bytes.
    return tf.debugging.Assert(
        value <= limit, [tf.strings.format(template, value)], name=f"check_{name}"
    )


def bytes_checks(strings, max_bytes):
    """Assert ops for the bytes of a string tensor (any shape): at most `max_bytes` (None: any).

    Reads the strings' lengths only, never their bytes."""
    import tensorflow as tf

    if max_bytes is None:
        return []
    total = tf.reduce_sum(tf.cast(tf.strings.length(strings), tf.int64))
    op = _assert_at_most(total, max_bytes, "max_bytes_per_request", "bytes of strings")
    return [op] if op is not None else []


def batch_checks(batch, max_batch_size):
    """Assert ops (an empty list in eager mode, where a failure raises) for the batch size."""
    if max_batch_size is None:
        return []
    op = _assert_at_most(batch, max_batch_size, "max_batch_size", "sentences")
    return [op] if op is not None else []  # None: eager, and the check passed


def token_checks(batch, longest, max_tokens_per_sentence=None, max_tokens_per_request=None):
    """Assert ops for a request of `batch` sentences whose longest has `longest` tokens."""
    import tensorflow as tf

    ops = []
    if max_tokens_per_sentence is not None:
        ops.append(
            _assert_at_most(
                tf.cast(longest, tf.int64),
                max_tokens_per_sentence,
                "max_tokens_per_sentence",
                "tokens in its longest sentence",
            )
        )
    if max_tokens_per_request is not None:
        # int64: batch x longest of a hostile request overflows int32.
        positions = tf.cast(batch, tf.int64) * tf.cast(longest, tf.int64)
        ops.append(
            _assert_at_most(
                positions,
                max_tokens_per_request,
                "max_tokens_per_request",
                "token positions (sentences x tokens of the longest)",
            )
        )
    return [op for op in ops if op is not None]


def longest_row(row_lengths):
    """The largest row length, 0 for an empty batch (reduce_max of nothing is the lowest int)."""
    import tensorflow as tf

    return tf.reduce_max(tf.concat([tf.zeros([1], row_lengths.dtype), row_lengths], 0))


def after(checks, tensor):
    """`tensor`, made to depend on `checks` (a dense or ragged tensor; no-op in eager mode)."""
    import tensorflow as tf

    if not checks:
        return tensor
    with tf.control_dependencies(checks):
        if isinstance(tensor, tf.RaggedTensor):
            return tensor.with_flat_values(tf.identity(tensor.flat_values))
        return tf.identity(tensor)
