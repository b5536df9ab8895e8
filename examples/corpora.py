"""The full corpora of the examples, the benchmarks and the training recipe.

Tooling of the repository, not part of the installed package: the examples
import it from their own folder, the benchmarks put `examples/` on
`sys.path`. It reads the English text in the data folder (`$KERAS_ELMO_DATA`,
else `../shared/data` beside the clone; docs/examples.md, "Data"): the Brown
corpus (tagged, tokenized), the State of the Union addresses and Moby-Dick
(raw prose), with a rule-based sentence splitter for the prose and the fixed
held-out rules, so that every run gets the same split. `write_splits`
writes the splits as tokenized text, one sentence per line, for
`keras-elmo build-vocab` and `keras-elmo train`:

    python examples/corpora.py DATA_DIR SPLIT_DIR
"""

import argparse
import glob
import os
import pathlib
import re
import sys

import example_utils

# keras_elmo (and with it TensorFlow) is imported on first use, by
# `tokenize_prose`: a missing folder or file is reported before it loads.


def data_root(path=None, must_exist=True):
    """The data folder: `path`, else `example_utils.data_dir()`
    ($KERAS_ELMO_DATA, else `../shared/data` beside the clone)."""
    path = pathlib.Path(path) if path is not None else example_utils.data_dir()
    if must_exist and not path.is_dir():
        raise FileNotFoundError(
            f"data folder not found: {path} (pass a path or set ${example_utils.DATA_ENV})."
        )
    return path


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
    from keras_elmo.text import tokenization

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
        raise ValueError(f"no Brown files (ca01..cr09) found in {brown_dir}.")
    train, held = [], []
    for i, name in enumerate(names):
        path = os.path.join(brown_dir, name)
        (held if i % BROWN_HELDOUT_EVERY == BROWN_HELDOUT_EVERY - 1 else train).append(path)
    return train, held


def split_brown_token(item):
    """`word/tag` -> (word, tag); the tag is after the last '/'."""
    word, sep, tag = item.rpartition("/")
    if not sep or not word:
        raise ValueError(f"Brown token {item!r} is not of the form word/tag.")
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
        raise ValueError(f"no SOTU files (YYYY_*.txt) found in {sotu_dir}.")
    return train, held


def moby_dick_files(moby_dir):
    """The chapter files of Moby-Dick, in chapter order (all used for training)."""
    files = glob.glob(os.path.join(moby_dir, "chapter_*.txt"))
    if not files:
        raise ValueError(f"no Moby-Dick chapter files found in {moby_dir}.")
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


def main(argv=None):
    """`python examples/corpora.py DATA_DIR SPLIT_DIR`: write the splits, print their sizes."""
    parser = argparse.ArgumentParser(description="Write the fixed splits of the full corpora.")
    parser.add_argument("data_dir", help="the folder holding brown/, sotu/ and moby-dick/")
    parser.add_argument("split_dir", help="where to write the splits")
    args = parser.parse_args(argv)
    try:
        splits = write_splits(data_root(args.data_dir), args.split_dir)
    except (ValueError, OSError) as error:
        example_utils.fail(str(error))
    for name, (paths, n_sent, n_tok) in splits.items():
        more = " ..." if len(paths) > 2 else ""
        print(f"{name}: {n_sent} sentences, {n_tok} tokens -> {', '.join(paths[:2])}{more}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
