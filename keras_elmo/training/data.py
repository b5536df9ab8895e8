"""Text-level data for biLM training: vocabularies, corpora and tf.data input.

This module sits below the model in the import order (text -> chars ->
model): it never imports `layer`, `bilm` or `training`.

Pieces:
- `split_sentences` / `tokenize_prose`: a rule-based sentence splitter and
  the project's "punctuation" tokenizer for raw prose;
- readers for the three corpora of `shared/data` (Brown, State of the Union,
  Moby-Dick) and the fixed held-out rules (`BROWN_HELDOUT_EVERY`,
  `SOTU_HELDOUT_FROM_YEAR`), plus `write_splits` which writes them as
  tokenized text, one sentence per line;
- `count_tokens` / `build_vocab` / `write_vocab` / `load_vocab`: the LM
  vocabulary in the bilm-tf layout (`<S>`, `</S>`, `<UNK>` first);
- `make_dataset`: a streaming `tf.data` pipeline from tokenized text files
  to bucketed, padded batches of char ids and target word ids.
"""

import collections
import glob
import os
import re

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.text import characters, tokenization

BOS, EOS, UNK = characters.BOS_TOKEN, characters.EOS_TOKEN, "<UNK>"
SPECIAL_TOKENS = (BOS, EOS, UNK)
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2

# Held-out rules (fixed, so that every run and every user gets the same split).
# Brown: of the 500 files ca01..cr09 in sorted order, file i (0-based) is held
# out when i % BROWN_HELDOUT_EVERY == BROWN_HELDOUT_EVERY - 1 (the 10th, 20th,
# ... file: 50 files, spread over all 15 genres).
BROWN_HELDOUT_EVERY = 10
# SOTU: the addresses given in SOTU_HELDOUT_FROM_YEAR or later are held out.
SOTU_HELDOUT_FROM_YEAR = 2010

# ---------------------------------------------------------------- splitting

# Tokens that end in "." without ending a sentence (compared lower-cased).
ABBREVIATIONS = frozenset(
    """
mr mrs ms dr prof sr jr st mt messrs mme mlle gen col maj capt lt sgt adm gov
rep sen hon rev fr vs etc e.g i.e cf no nos vol pp fig jan feb mar apr jun jul
aug sep sept oct nov dec inc co corp ltd bros dept est approx u.s u.s.a u.k
d.c a.m p.m
""".split()
)

_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ", "\u2013": "-"}
)
# A candidate boundary: . ! or ? (maybe followed by closing quotes/brackets),
# then whitespace, then an opening quote/bracket or a capital letter or digit.
_BOUNDARY = re.compile(r"""([.!?]+['")\]]*)\s+(?=['"(\[]*[A-Z0-9])""")


def normalize_prose(text):
    """Curly quotes and dashes -> ASCII forms the tokenizer knows."""
    return text.translate(_QUOTES)


def _is_abbreviation(chunk):
    """True when `chunk` (text up to and including a '.') ends in an abbreviation."""
    words = chunk.split()
    if not words:
        return False
    last = words[-1].lstrip("\"'([").rstrip(".").lower()
    if last in ABBREVIATIONS:
        return True
    # Initials such as "J." or "F.D.R."
    return bool(re.fullmatch(r"([a-z]\.)*[a-z]", last))


def split_sentences(text):
    """Split a paragraph of raw prose into sentences (list of str).

    A sentence ends at `.`, `!` or `?` (plus closing quotes/brackets) that is
    followed by whitespace and then a capital letter, digit or opening quote;
    a period after a known abbreviation (`Mr.`, `Dr.`, `U.S.`, ...) or an
    initial (`J.`) does not end a sentence.
    """
    text = " ".join(normalize_prose(text).split())
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(1)
        if match.group(1).startswith(".") and match.group(1).rstrip("'\")]") == ".":
            if _is_abbreviation(text[start:end].rstrip("'\")]")):
                continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def tokenize_prose(sentence):
    """One sentence of raw prose -> tokens (the "punctuation" tokenizer)."""
    tokens = tokenization.tokenize_python(normalize_prose(sentence), "punctuation")
    # A sentence-final "." glued to a closing quote/bracket ("end.") or "end?")
    # is split by the rules; one glued to the last word is split here as well.
    if (
        tokens
        and len(tokens[-1]) > 1
        and tokens[-1].endswith(".")
        and not _is_abbreviation(tokens[-1])
    ):
        tokens[-1:] = [tokens[-1][:-1], "."]
    return tokens


def prose_paragraphs(path):
    """Paragraphs of a plain-text file: blocks separated by blank lines."""
    block = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                block.append(line.strip())
            elif block:
                yield " ".join(block)
                block = []
    if block:
        yield " ".join(block)


def read_prose(path):
    """Yield the tokenized sentences (lists of str) of a raw prose file."""
    for paragraph in prose_paragraphs(path):
        for sentence in split_sentences(paragraph):
            tokens = tokenize_prose(sentence)
            if tokens:
                yield tokens


# ---------------------------------------------------------------- corpora

_BROWN_FILE = re.compile(r"^c[a-r]\d\d$")


def brown_files(brown_dir):
    """The 500 Brown text files, sorted; (train, held_out) lists of paths."""
    names = sorted(n for n in os.listdir(brown_dir) if _BROWN_FILE.match(n))
    if not names:
        raise InputError(f"no Brown files (ca01..cr09) found in {brown_dir}.")
    train, held = [], []
    for i, name in enumerate(names):
        path = os.path.join(brown_dir, name)
        (held if i % BROWN_HELDOUT_EVERY == BROWN_HELDOUT_EVERY - 1 else train).append(path)
    return train, held


def split_brown_token(item):
    """`word/tag` -> (word, tag); the tag is after the last '/'."""
    word, sep, tag = item.rpartition("/")
    if not sep or not word:
        raise InputError(f"Brown token {item!r} is not of the form word/tag.")
    return word, tag


def read_brown_tagged(path):
    """Yield [(word, tag), ...] per sentence of one Brown file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            items = line.split()
            if items:
                yield [split_brown_token(item) for item in items]


def read_brown(path):
    """Yield the token lists of one Brown file (tags dropped)."""
    for sentence in read_brown_tagged(path):
        yield [word for word, _ in sentence]


def simplify_brown_tag(tag):
    """A coarse tag: strip `-tl`/`-hl`/`-nc`/`-fw` parts and `*`/`$`, keep 2 letters.

    `nn-tl` -> `nn`, `vbd` -> `vb`, `np$` -> `np`, `fw-nn` -> `nn`, `,` -> `,`.
    Punctuation tags are kept as they are.
    """
    parts = [p for p in tag.lower().split("-") if p not in ("tl", "hl", "nc", "fw", "")]
    base = parts[0] if parts else tag.lower()
    base = base.split("+")[0].rstrip("*$") or base
    return base[:2] if base[0].isalpha() else base


def sotu_files(sotu_dir):
    """SOTU address files sorted by name; (train, held_out) by `SOTU_HELDOUT_FROM_YEAR`."""
    train, held = [], []
    for name in sorted(os.listdir(sotu_dir)):
        match = re.match(r"^(\d{4})_.*\.txt$", name)
        if not match:
            continue
        path = os.path.join(sotu_dir, name)
        (held if int(match.group(1)) >= SOTU_HELDOUT_FROM_YEAR else train).append(path)
    if not train and not held:
        raise InputError(f"no SOTU files (YYYY_*.txt) found in {sotu_dir}.")
    return train, held


def moby_dick_files(moby_dir):
    """The chapter files of Moby-Dick, in chapter order (all used for training)."""
    files = glob.glob(os.path.join(moby_dir, "chapter_*.txt"))
    if not files:
        raise InputError(f"no Moby-Dick chapter files found in {moby_dir}.")
    return sorted(files, key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))


def corpus_splits(data_dir):
    """{split name: [(reader, path), ...]} for the shared data directory.

    Splits: "train" (Brown training files, SOTU before the held-out year, all
    of Moby-Dick), "heldout_brown", "heldout_sotu".
    """
    brown_train, brown_held = brown_files(os.path.join(data_dir, "brown"))
    sotu_train, sotu_held = sotu_files(os.path.join(data_dir, "sotu"))
    moby = moby_dick_files(os.path.join(data_dir, "moby-dick"))
    return {
        "train": [(read_brown, p) for p in brown_train]
        + [(read_prose, p) for p in sotu_train]
        + [(read_prose, p) for p in moby],
        "heldout_brown": [(read_brown, p) for p in brown_held],
        "heldout_sotu": [(read_prose, p) for p in sotu_held],
    }


def write_splits(data_dir, out_dir, train_shards=16, seed=0):
    """Write the splits as tokenized text, one space-joined sentence per line.

    Held-out splits go to `out_dir/<split>.txt`. The training split is
    written to `train_shards` files `out_dir/train-XXXXX.txt`: the source
    documents are put in a fixed pseudo-random order (`seed`) and dealt
    round-robin to the shards, so that reading the shards interleaved mixes
    the three corpora (see `make_dataset`). Streams one document at a time.
    Returns {split: (paths, n_sentences, n_tokens)}.
    """
    import random

    os.makedirs(out_dir, exist_ok=True)
    result = {}
    for split, sources in corpus_splits(data_dir).items():
        if split == "train":
            sources = list(sources)
            random.Random(seed).shuffle(sources)
            paths = [os.path.join(out_dir, f"train-{k:05d}.txt") for k in range(train_shards)]
        else:
            paths = [os.path.join(out_dir, f"{split}.txt")]
        outs = [open(p, "w", encoding="utf-8") for p in paths]
        n_sent = n_tok = 0
        try:
            for k, (reader, source) in enumerate(sources):
                out = outs[k % len(outs)]
                for tokens in reader(source):
                    out.write(" ".join(tokens) + "\n")
                    n_sent += 1
                    n_tok += len(tokens)
        finally:
            for out in outs:
                out.close()
        result[split] = (paths, n_sent, n_tok)
    return result


def read_tokenized(path):
    """Yield the whitespace-split tokens of each non-empty line of a file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
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


def load_vocab(path):
    """Read a vocabulary file; the first three entries must be `<S>`, `</S>`, `<UNK>`."""
    with open(path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f if line.strip()]
    if tuple(vocab[:3]) != SPECIAL_TOKENS:
        raise InputError(
            f"{path}: a biLM vocabulary must start with <S>, </S>, <UNK>; got {vocab[:3]}."
        )
    if len(set(vocab)) != len(vocab):
        raise InputError(f"{path}: the vocabulary has duplicate entries.")
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

    Each line is one sentence of whitespace-separated tokens; a line longer
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
    ds = ds.map(lambda line: tf.strings.split(tf.strings.strip(line)))
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
