"""Token-budget batching: which lines go into one model call.

A model call pads its batch to the longest line, so its memory grows with
rows x longest line's tokens (the "token positions" of the call), not with
the number of lines. A fixed number of lines per call lets one long line
make every row as long as it is (64 rows x 16,000 tokens x 256 floats per
layer); a token budget bounds the call instead:

- lines are sorted by token count inside a window of consecutive lines
  (stable: equal lengths keep their input order), so a batch holds lines of
  similar length and carries little padding; batches never span windows,
  so only one window of lines is held at a time;
- a batch takes the next line as long as (its lines + 1) x the longest
  line's tokens stays within `budget` (and, when `max_rows` is given, it
  holds fewer than `max_rows` lines);
- a line longer than the budget runs alone (the readers bound the tokens
  of a line: `keras_elmo.limits.MAX_TOKENS_PER_LINE`);
- a line of 0 tokens counts as 1 (a padded batch has at least one column).

Every index is in exactly one batch; `in_input_order` puts per-line results
back in input order. Pure Python, no TensorFlow import: `keras-elmo embed`
(`jobs.embed_file`), `keras-elmo beam-embed` (`integrations.beam`) and
other runners batch with these functions.

    >>> token_budget_batches([3, 1, 12, 2], budget=8)
    [[1, 3], [0], [2]]
    >>> token_budget_batches([3, 1, 12, 2], budget=8, window=2)
    [[1, 0], [3], [2]]
"""

from keras_elmo.errors import InputError

# The default token budget of a model call: rows x longest line's tokens.
# 64 lines x 64 tokens: a file whose lines have at most 64 tokens gets the
# fixed batches of 64 lines of before. Measured with
# benchmarks/memory_long_line.py (docs/performance.md, "Memory of one long
# line"): 2048, 4096 and 8192 ran within noise of each other on the shipped and
# the full-size model, and larger budgets only cost memory.
BATCH_TOKENS = 4096


def check_positive(name, value, allow_none=False):
    """`value`, a positive int (or None if `allow_none`); an InputError naming `name` if not."""
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _width(length):
    return max(1, length)


def _split_sorted(indices, lengths, budget, max_rows):
    """Greedy batches of `indices`, already sorted by length (shortest first)."""
    batch = []
    for index in indices:
        width = _width(lengths[index])  # sorted: the newest line is the longest
        full = batch and (
            (budget is not None and (len(batch) + 1) * width > budget)
            or (max_rows is not None and len(batch) >= max_rows)
        )
        if full:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def token_budget_batches(lengths, budget, window=None, max_rows=None):
    """Split lines of `lengths` tokens into batches; returns lists of indices.

    Args:
        lengths: tokens of each line (a sequence of non-negative ints, or a
            numpy integer array).
        budget: a positive int: at most this many token positions (rows x
            longest line's tokens) per batch; a longer line runs alone.
            None: no token budget, batches of `max_rows` lines (the old
            fixed batching of `keras-elmo embed`).
        window: lines are sorted by length inside consecutive windows of this
            many lines, and batches never span two windows; None: one window.
        max_rows: at most this many lines per batch (None: the budget only).

    Returns:
        a list of batches, each a list of indices into `lengths`, shortest
        line first; within a window the batches, joined, are the window's
        indices sorted by (length, index). Every index is in exactly one.
    """
    lengths = [int(length) for length in lengths]
    return [
        [index for index, _ in batch]
        for batch in iter_token_budget_batches(
            enumerate(lengths), lambda item: item[1], budget, window, max_rows
        )
    ]


def iter_token_budget_batches(items, length, budget, window=None, max_rows=None):
    """`token_budget_batches` over a stream: yields lists of the items themselves.

    `items`: any iterable (read once; at most `window` items are held);
    `length(item)`: its tokens. The other arguments are
    `token_budget_batches`'s. `keras-elmo embed` gives (index, tokens) pairs
    from its reader.
    """
    check_positive("batch tokens", budget, allow_none=True)
    check_positive("window", window, allow_none=True)
    check_positive("max rows", max_rows, allow_none=True)
    chunk = []
    for item in items:
        chunk.append(item)
        if window is not None and len(chunk) == window:
            yield from _window_batches(chunk, length, budget, max_rows)
            chunk = []
    if chunk:
        yield from _window_batches(chunk, length, budget, max_rows)


def _window_batches(chunk, length, budget, max_rows):
    lengths = [length(item) for item in chunk]
    order = sorted(range(len(chunk)), key=lengths.__getitem__)  # stable
    for batch in _split_sorted(order, lengths, budget, max_rows):
        yield [chunk[i] for i in batch]


def in_input_order(batches, results):
    """Per-batch results back in input order.

    `batches`: lists of indices (from `token_budget_batches`) covering
    0..n-1 once each; `results`: for each batch, one result per index, in the
    batch's order. Returns the n results as a list, result i for index i.
    """
    batches = [list(batch) for batch in batches]
    n = sum(len(batch) for batch in batches)
    out = [None] * n
    seen = [False] * n
    for batch, batch_results in zip(batches, results, strict=True):
        batch_results = list(batch_results)
        if len(batch_results) != len(batch):
            raise ValueError(f"a batch of {len(batch)} indices has {len(batch_results)} results.")
        for index, result in zip(batch, batch_results):
            if not 0 <= index < n or seen[index]:
                raise ValueError(f"index {index} is out of range or in two batches.")
            seen[index] = True
            out[index] = result
    return out


def padded_positions(lengths):
    """Token positions of one padded batch: rows x the longest line's tokens (at least 1)."""
    lengths = list(lengths)
    return len(lengths) * max((_width(length) for length in lengths), default=1)
