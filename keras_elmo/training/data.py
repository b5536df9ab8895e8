"""Text-level data for biLM training: vocabularies and tf.data input.

This module never imports the model (`keras_elmo.layers`) or the trainer.
The project's own corpora (readers, held-out rules, splits) are tooling of
the repository, `examples/corpora.py`, not part of the package.

Pieces:
- `read_tokenized`: one tokenized sentence per line;
- `count_tokens` / `build_vocab` / `write_vocab` / `load_vocab`: the LM
  vocabulary in the bilm-tf layout (`<S>`, `</S>`, `<UNK>` first);
- `make_dataset`: a streaming `tf.data` pipeline from tokenized text files
  to bucketed, padded batches of char ids and target word ids.
"""

import collections
import os

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.text import characters, tokenization

BOS, EOS, UNK = characters.BOS_TOKEN, characters.EOS_TOKEN, "<UNK>"
SPECIAL_TOKENS = (BOS, EOS, UNK)
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2


def read_tokenized(path):
    """Yield the whitespace-split tokens of each non-empty line of a file.

    The lines and tokens `make_dataset` trains on. Lines end at LF and every
    CR is dropped, as `tf.data.TextLineDataset` reads them (a CRLF file reads
    like an LF one; a lone CR does not separate words). Tokens are split on
    keras_elmo's one whitespace (`keras_elmo.text.tokenization`, Python's
    `str.isspace()`). A line that is not UTF-8 is an `InputError` naming the
    file and the line.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{path}, line {number}: not valid UTF-8 (byte {err.start + 1} of the line); "
                    "training text must be UTF-8."
                ) from None
            tokens = tokenization.tokenize_python(line.replace("\r", ""))
            if tokens:
                yield tokens


# ---------------------------------------------------------------- vocabulary


def count_tokens(paths, reader=read_tokenized):
    """A Counter of the tokens in the given files (streamed one file at a time)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    counts = collections.Counter()
    for path in paths:
        for tokens in reader(path):
            counts.update(tokens)
    return counts


def build_vocab(counts, min_count=1, max_size=None):
    """Counts -> vocabulary list: `<S>`, `</S>`, `<UNK>`, then by falling count.

    Ties are broken by the token string so the result is deterministic.
    `min_count` drops rarer tokens; `max_size` caps the total size
    (including the three special tokens).
    """
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer, got {min_count!r}.")
    if max_size is not None and (not isinstance(max_size, int) or max_size <= len(SPECIAL_TOKENS)):
        raise ValueError(f"max_size must be an integer > {len(SPECIAL_TOKENS)}, got {max_size!r}.")
    words = sorted(
        ((w, c) for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
        key=lambda wc: (-wc[1], wc[0]),
    )
    vocab = list(SPECIAL_TOKENS) + [w for w, _ in words]
    return vocab[:max_size] if max_size is not None else vocab


def write_vocab(vocab, path):
    """One token per line, in order (the bilm-tf vocabulary file)."""
    with open(path, "w", encoding="utf-8") as f:
        for word in vocab:
            f.write(word + "\n")


def _entry(text):
    """A vocabulary entry for an error message: quoted, at most 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def load_vocab(path):
    """Read a vocabulary file (one token a line); check it, naming the file and line.

    The first three entries must be `<S>`, `</S>`, `<UNK>`. Every line must
    be UTF-8, non-empty, without whitespace (keras_elmo's one definition:
    training splits tokens there, so such an entry could never be seen) and
    unique. Lines end at LF; a CR before it is allowed (CRLF files).
    Anything else is an `InputError` "PATH, line N: ...".
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"vocabulary file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the LF that ends the last line
    vocab, seen = [], {}
    for number, line in enumerate(lines, 1):
        where = f"{path}, line {number}"
        line = line[:-1] if line.endswith(b"\r") else line
        try:
            word = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                f"{where}: not valid UTF-8 (byte {err.start + 1}); a vocabulary file is UTF-8."
            ) from None
        if not word:
            raise InputError(f"{where}: an empty line; a vocabulary has one token on every line.")
        if tokenization.tokenize_python(word) != [word]:
            raise InputError(
                f"{where}: the entry {_entry(word)} holds whitespace; tokens are split on "
                "whitespace, so it could never be seen."
            )
        if number <= len(SPECIAL_TOKENS) and word != SPECIAL_TOKENS[number - 1]:
            raise InputError(
                f"{where}: a biLM vocabulary must start with <S>, </S>, <UNK> (one a line); "
                f"line {number} is {_entry(word)}."
            )
        if word in seen:
            raise InputError(f"{where}: {_entry(word)} is a duplicate of line {seen[word]}.")
        seen[word] = number
        vocab.append(word)
    if len(vocab) < len(SPECIAL_TOKENS):
        raise InputError(
            f"{path}: a biLM vocabulary must start with <S>, </S>, <UNK> (one a line); "
            f"the file has {len(vocab)} lines."
        )
    return vocab


# ---------------------------------------------------------------- tf.data


def make_word_table(vocab):
    """A tf lookup table token -> id, `<UNK>` (2) for anything else."""
    import tensorflow as tf

    keys = tf.constant(list(vocab))
    values = tf.range(len(vocab), dtype=tf.int32)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), UNK_ID)


def default_buckets(max_len):
    """Bucket boundaries (in tokens incl. the two boundaries) up to `max_len + 2`."""
    bounds = [b for b in (8, 12, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130) if b < max_len + 2]
    return bounds


def make_dataset(
    paths,
    vocab,
    batch_size,
    max_len=50,
    shuffle_buffer=0,
    seed=0,
    repeat=False,
    buckets=None,
    skip_batches=0,
    drop_remainder=False,
    max_chars=characters.MAX_CHARS_PER_TOKEN,
):
    """Stream tokenized text files into biLM batches.

    Each line is one sentence of whitespace-separated tokens (the whitespace
    of `keras_elmo.text.tokenization`, as `read_tokenized`); a line longer
    than `max_len` tokens is cut into pieces of at most `max_len`. Every
    sentence becomes `<S> w1 .. wn </S>`. Sentences are grouped into buckets
    of similar length and padded to the longest in the batch.

    Yields dicts: `char_ids` int32 (B, T, max_chars) (0 = padding) and
    `word_ids` int32 (B, T) (-1 = padding; `<S>`=0, `</S>`=1, unknown=2).

    The pipeline is deterministic for a given seed: files are read
    interleaved in a fixed order, lines are shuffled in blocks of
    `shuffle_buffer` with a stateless RNG seeded by `seed`, so `skip_batches=k` continues exactly
    where k batches of a previous run stopped (used to resume training).
    """
    import tensorflow as tf

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    for p in paths:
        if not os.path.isfile(p):
            raise MissingFileError(f"training text file not found: {p}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}.")
    table = make_word_table(vocab)
    buckets = default_buckets(max_len) if buckets is None else list(buckets)

    if len(paths) == 1:
        ds = tf.data.TextLineDataset(paths)
    else:
        # Read all files in parallel, line by line in turn (deterministic).
        ds = tf.data.Dataset.from_tensor_slices(paths).interleave(
            tf.data.TextLineDataset, cycle_length=len(paths), block_length=1
        )
    if repeat:
        ds = ds.repeat()
    if shuffle_buffer:
        ds = _block_shuffle(ds, shuffle_buffer, seed)
    # keras_elmo's one whitespace (tokenization.py), as read_tokenized and the tokenizers split.
    ds = ds.map(lambda line: tf.strings.split(tokenization.normalize_whitespace(line)))
    ds = ds.filter(lambda tokens: tf.size(tokens) > 0)

    def chunk(tokens):
        n = tf.size(tokens)
        n_pieces = (n + max_len - 1) // max_len
        padded = tf.pad(tokens, [[0, n_pieces * max_len - n]])
        pieces = tf.RaggedTensor.from_tensor(tf.reshape(padded, [n_pieces, max_len]), padding="")
        return tf.data.Dataset.from_tensor_slices(pieces)

    ds = ds.flat_map(chunk)
    ds = ds.map(lambda tokens: tf.concat([[BOS], tokens, [EOS]], 0))
    if buckets:
        sizes = [batch_size] * (len(buckets) + 1)
        ds = ds.bucket_by_sequence_length(
            lambda t: tf.size(t),
            buckets,
            sizes,
            padded_shapes=[None],
            padding_values="",
            drop_remainder=drop_remainder,
        )
    else:
        ds = ds.padded_batch(
            batch_size, padded_shapes=[None], padding_values="", drop_remainder=drop_remainder
        )
    if skip_batches:
        ds = ds.skip(skip_batches)  # cheap: only strings so far

    def to_ids(tokens):
        char_ids = characters.tokens_to_char_ids(tokens, max_chars, validate_utf8=False)
        word_ids = tf.where(tokens == "", -1, table.lookup(tokens))
        return {"char_ids": char_ids, "word_ids": word_ids}

    ds = ds.map(to_ids, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)


def _block_shuffle(ds, block, seed):
    """Shuffle within consecutive blocks of `block` lines with a stateless RNG.

    Unlike `Dataset.shuffle`, the order depends only on `seed` (not on the
    global TF seed), which keeps resumed runs identical to uninterrupted ones.
    """
    import tensorflow as tf

    def permute(index, lines):
        key = tf.random.stateless_uniform(
            tf.shape(lines), seed=tf.stack([tf.cast(seed, tf.int64), index[0]])
        )
        return tf.gather(lines, tf.argsort(key))

    return ds.enumerate().batch(block).map(permute).unbatch()


def batch_numpy(sentences, vocab, max_chars=characters.MAX_CHARS_PER_TOKEN):
    """The same batch layout from Python token lists (no bucketing, no cut).

    Returns (char_ids (B, T, max_chars), word_ids (B, T)) as numpy int32,
    with `<S>`/`</S>` added and -1 / 0 padding, like `make_dataset`.
    """
    import numpy as np

    index = {w: i for i, w in enumerate(vocab)}
    wrapped = [[BOS] + list(s) + [EOS] for s in sentences]
    char_ids = characters.batch_to_ids(wrapped, max_chars)
    word_ids = np.full(char_ids.shape[:2], -1, dtype=np.int32)
    for i, s in enumerate(wrapped):
        word_ids[i, : len(s)] = [index.get(w, UNK_ID) for w in s]
    return char_ids, word_ids
