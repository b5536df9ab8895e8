"""The original `options.json`: parsing, validation and the published sizes.

Options stay a plain JSON-compatible dict (the same layout as the published
files) so they can live inside a Keras config unchanged. `validate_options`
returns a normalised copy: optional keys filled with their defaults.
"""

import copy
import json
import math

from keras_elmo.errors import InputError

ACTIVATIONS = ("relu", "tanh")
# Operand dtypes of the biLM's matmuls and convolutions (ElmoLayer's
# `matmul_dtype`): float32 is exact, the others are the optional
# lower-precision path (sums, gates, state and outputs stay float32).
MATMUL_DTYPES = ("float32", "bfloat16", "float16")


def validate_matmul_dtype(value, who):
    """A `matmul_dtype` argument: one of MATMUL_DTYPES; ValueError naming `who` otherwise."""
    if value not in MATMUL_DTYPES:
        raise ValueError(f"{who}: matmul_dtype must be one of {MATMUL_DTYPES}, got {value!r}.")
    return value


_CHAR_CNN_DEFAULTS = {
    "embedding": {"dim": 16},
    "n_characters": 262,
    "max_characters_per_token": 50,
    "activation": "relu",
    "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
    "n_highway": 2,
}


def make_options(
    lstm_dim,
    projection_dim,
    n_layers=2,
    n_highway=2,
    char_dim=16,
    filters=None,
    max_characters_per_token=50,
):
    """Options for a model of the given sizes (clipping at 3 and skip
    connections, as in every published model); `filters` defaults to the
    published 2048-filter char CNN. Returned validated.
    """
    char_cnn = copy.deepcopy(_CHAR_CNN_DEFAULTS)
    char_cnn.update(
        {"embedding": {"dim": char_dim}, "n_highway": n_highway},
        max_characters_per_token=max_characters_per_token,
    )
    if filters is not None:
        char_cnn["filters"] = [list(pair) for pair in filters]
    lstm = {
        "dim": lstm_dim,
        "projection_dim": projection_dim,
        "n_layers": n_layers,
        "cell_clip": 3,
        "proj_clip": 3,
        "use_skip_connections": True,
    }
    return validate_options({"lstm": lstm, "char_cnn": char_cnn})


# The three sizes released with the paper (same char CNN, different LSTM).
PUBLISHED_SIZES = {
    "small": {"lstm_dim": 1024, "projection_dim": 128, "n_highway": 1},
    "medium": {"lstm_dim": 2048, "projection_dim": 256, "n_highway": 1},
    "original": {"lstm_dim": 4096, "projection_dim": 512, "n_highway": 2},
}


def published_options(name):
    """Returns the options of one of the model sizes released with ELMo.

    The three sizes AllenNLP published (the same 2048-filter char CNN,
    different LSTMs), e.g. to build a randomly initialised `ElmoLayer` of a
    published size, or to train one (`keras-elmo train`).

    Args:
        name: str. `"small"` (LSTM 1024, projection 128, 1 highway layer),
            `"medium"` (2048, 256, 1) or `"original"` (4096, 512, 2: the
            model of the paper).

    Returns:
        A new validated options dict (a copy: changing it changes nothing
        else). An unknown name is an `InputError`.

    Example:

    >>> import keras_elmo
    >>> options = keras_elmo.published_options("original")
    >>> lstm = options["lstm"]
    >>> lstm["n_layers"], lstm["dim"], lstm["projection_dim"], options["char_cnn"]["n_highway"]
    (2, 4096, 512, 2)
    >>> sum(count for width, count in options["char_cnn"]["filters"])
    2048

    The published file names say the same: `2x4096_512_2048cnn_2xhighway`.

    Reference:
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL.
    """
    if name not in PUBLISHED_SIZES:
        raise InputError(
            f"Unknown published size {name!r}; choose one of {sorted(PUBLISHED_SIZES)}."
        )
    return make_options(**PUBLISHED_SIZES[name])


# A published options.json is under 1 KB; a file past this is not one.
MAX_OPTIONS_BYTES = 1 << 20


def load_options(path):
    """Reads and validates an `options.json` file.

    The file layout is the one published with the models (bilm-tf's
    `options.json`); the keys `ElmoLayer` does not use (`n_epochs`,
    `dropout`, ...) are ignored. Optional keys get their defaults
    (`activation` "relu", no clipping, no skip connections, no highway), and
    `n_characters` 261 (as bilm-tf writes it during training) reads as 262,
    the same table.

    Args:
        path: str or path-like. The options file (at most 1 MiB of UTF-8
            JSON; a byte-order mark is accepted).

    Returns:
        A validated options dict, normalised, to pass to `ElmoLayer`.
        Invalid JSON, a missing or wrong value, or sizes past
        `keras_elmo.options.SIZE_LIMITS` are an `InputError` naming the file
        and the option.

    Example:

    >>> import json
    >>> import keras_elmo
    >>> options = {
    ...     "lstm": {"dim": 16, "projection_dim": 8, "n_layers": 2, "cell_clip": 3},
    ...     "char_cnn": {
    ...         "embedding": {"dim": 4},
    ...         "filters": [[1, 4], [2, 8]],
    ...         "n_characters": 261,
    ...         "max_characters_per_token": 50,
    ...     },
    ... }
    >>> with open("options.json", "w") as f:
    ...     json.dump(options, f)
    >>> loaded = keras_elmo.load_options("options.json")
    >>> loaded["lstm"]
    {'dim': 16, 'projection_dim': 8, 'n_layers': 2, 'cell_clip': 3.0, 'proj_clip': None,
     'use_skip_connections': False}
    >>> cnn = loaded["char_cnn"]
    >>> cnn["n_characters"], cnn["activation"], cnn["n_highway"]
    (262, 'relu', 0)
    """
    with open(path, "rb") as f:
        data = f.read(MAX_OPTIONS_BYTES + 1)
    if len(data) > MAX_OPTIONS_BYTES:
        raise InputError(f"{path}: over {MAX_OPTIONS_BYTES} bytes; not an options file.")
    try:
        # utf-8-sig: a byte-order mark written by an editor is not an error.
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 (byte {err.start}: {err.reason}).") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply).") from None
    except ValueError as err:  # JSONDecodeError, and ints over Python's digit limit
        raise InputError(f"{path}: not valid JSON ({err}).") from None
    return validate_options(raw, source=str(path))


def _require(section, key, where, kind=int, positive=True):
    if key not in section:
        raise InputError(f"{where}: missing required option {key!r}.")
    value = section[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(f"{where}: option {key!r} must be an integer, got {value!r}.")
    if positive and value <= 0:
        raise InputError(f"{where}: option {key!r} must be positive, got {value!r}.")
    return value


def _clip(lstm, key, where):
    value = lstm.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        # NaN passes `value <= 0` and would make every output NaN.
        raise InputError(
            f"{where}: option lstm.{key} must be a positive finite number or absent, got {value!r}."
        )
    return float(value)


def _flag(section, key, where):
    value = section.get(key, False)
    # bool("false") is True: only JSON booleans (and the integers 0/1) are
    # accepted; 0.0 == False, so the type is checked, not just the value.
    if not (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
        raise InputError(f"{where}: option {key!r} must be true or false, got {value!r}.")
    return bool(value)


def _validate_lstm(lstm, where_l):
    return {
        "dim": _require(lstm, "dim", where_l),
        "projection_dim": _require(lstm, "projection_dim", where_l),
        "n_layers": _require(lstm, "n_layers", where_l),
        "cell_clip": _clip(lstm, "cell_clip", where_l),
        "proj_clip": _clip(lstm, "proj_clip", where_l),
        "use_skip_connections": _flag(lstm, "use_skip_connections", where_l),
    }


def _validate_filters(filters, max_chars, where_c):
    if not isinstance(filters, list) or not filters:
        raise InputError(f"{where_c}: 'filters' must be a non-empty list of [width, count] pairs.")
    clean_filters = []
    for k, pair in enumerate(filters):
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair)
        ):
            raise InputError(
                f"{where_c}: filter {k} must be [width, count] of positive ints, got {pair!r}."
            )
        if pair[0] > max_chars:
            raise InputError(
                f"{where_c}: filter {k} is wider ({pair[0]}) than max_characters_per_token."
            )
        clean_filters.append([int(pair[0]), int(pair[1])])
    return clean_filters


def _validate_n_highway(cnn, where_c):
    # Absent or null is no highway (bilm-tf's reading); the type is checked
    # before that default: `[]`, `false` or `""` are not 0.
    n_highway = cnn.get("n_highway")
    if n_highway is None:
        return 0
    if isinstance(n_highway, bool) or not isinstance(n_highway, int) or n_highway < 0:
        raise InputError(f"{where_c}: n_highway must be a non-negative integer, got {n_highway!r}.")
    return n_highway


def _activation(section, where, who):
    activation = section.get("activation", "relu")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise InputError(f"{where}: unknown activation {activation!r}; {who} {ACTIVATIONS}.")
    return activation


# The token embedder of an ELMoForManyLangs model (options["kind"] == "efml"):
# Unicode characters looked up in the model's char lexicon, an optional word
# embedding, always a projection. The lexicons themselves are not options
# (they travel as assets); their table sizes are.
EFML_KIND = "efml"
# The lexicon entries EFML's batcher needs (char.dic, word.dic).
EFML_CHAR_SPECIALS = ("<oov>", "<pad>", "<bow>", "<eow>", "<bos>", "<eos>")
EFML_WORD_SPECIALS = ("<oov>", "<pad>")
# EFML's batcher (frontend.create_one_batch) unpacks the ids of ('<eow>',
# '<bow>', '<oov>', '<pad>') into (bow, eow, oov, pad), so the begin-of-word
# slot of every token holds the id of `<eow>` and the end-of-word slot the
# id of `<bow>`: swapped against their names. The published models were
# trained through the same code, so the swap is what their weights expect;
# these two name what goes where.
EFML_BEGIN_OF_WORD = "<eow>"
EFML_END_OF_WORD = "<bow>"


def _validate_efml(options, source):
    if not isinstance(options.get("lstm"), dict):
        raise InputError(f"{source}: missing the 'lstm' section.")
    if not isinstance(options.get("token_embedder"), dict):
        raise InputError(f"{source}: missing the 'token_embedder' section.")
    emb = options["token_embedder"]
    where = f"{source} [token_embedder]"
    activation = _activation(emb, where, "EFML has")
    max_chars = _require(emb, "max_characters_per_token", where)
    if max_chars < 3:
        raise InputError(f"{where}: max_characters_per_token must be at least 3, got {max_chars}.")
    word_dim = _require(emb, "word_dim", where, positive=False)
    n_words = _require(emb, "n_words", where, positive=False)
    if word_dim < 0 or n_words < 0 or (word_dim > 0) != (n_words > 0):
        raise InputError(
            f"{where}: word_dim ({word_dim}) and n_words ({n_words}) must both be positive "
            "(a word embedding) or both 0 (none)."
        )
    normalised = {
        "kind": EFML_KIND,
        "lstm": _validate_lstm(dict(options["lstm"]), f"{source} [lstm]"),
        "token_embedder": {
            "char_dim": _require(emb, "char_dim", where),
            "n_chars": _require(emb, "n_chars", where),
            "word_dim": word_dim,
            "n_words": n_words,
            "max_characters_per_token": max_chars,
            "activation": activation,
            "filters": _validate_filters(emb.get("filters"), max_chars, where),
            "n_highway": _validate_n_highway(emb, where),
        },
    }
    check_sizes(normalised, source)
    return normalised


def is_efml(options):
    """True for the options of an ELMoForManyLangs model."""
    return options.get("kind") == EFML_KIND


def max_characters(options):
    """The per-token character limit of either kind of options."""
    section = options["token_embedder" if is_efml(options) else "char_cnn"]
    return section["max_characters_per_token"]


def validate_options(options, source="options"):
    """Check an options dict and return a normalised deep copy."""
    if not isinstance(options, dict):
        raise InputError(f"{source}: options must be a dict, got {type(options).__name__}.")
    kind = options.get("kind")
    if kind == EFML_KIND:
        return _validate_efml(options, source)
    if kind is not None:
        raise InputError(f"{source}: unknown options kind {kind!r} (known: {EFML_KIND!r}).")
    for section in ("lstm", "char_cnn"):
        if not isinstance(options.get(section), dict):
            raise InputError(f"{source}: missing the {section!r} section.")
    lstm = dict(options["lstm"])
    cnn = copy.deepcopy(options["char_cnn"])
    where_l, where_c = f"{source} [lstm]", f"{source} [char_cnn]"
    out_lstm = _validate_lstm(lstm, where_l)
    embedding = cnn.get("embedding")
    if not isinstance(embedding, dict):
        raise InputError(f"{where_c}: missing 'embedding': {{'dim': ...}}.")
    activation = _activation(cnn, where_c, "the original code supports")
    max_chars = _require(cnn, "max_characters_per_token", where_c)
    clean_filters = _validate_filters(cnn.get("filters"), max_chars, where_c)
    n_characters = _require(cnn, "n_characters", where_c)
    if n_characters not in (261, 262):
        raise InputError(
            f"{where_c}: n_characters must be 262 (prediction) or 261 "
            "(as written during LM training), "
            f"got {n_characters}."
        )
    n_highway = _validate_n_highway(cnn, where_c)
    out_cnn = {
        "embedding": {"dim": _require(embedding, "dim", where_c + " embedding")},
        # Both spellings describe the same 261-row table; we always run with the
        # +1 shifted ids, i.e. the prediction-time value.
        "n_characters": 262,
        "max_characters_per_token": max_chars,
        "activation": activation,
        "filters": clean_filters,
        "n_highway": n_highway,
    }
    normalised = {"lstm": out_lstm, "char_cnn": out_cnn}
    check_sizes(normalised, source)
    return normalised


# Upper bounds on every size, checked before any weight exists. The published
# models use dim 4096, projection 512, 2 layers, char dim 16, 50 characters,
# 7 filters of at most 1024 (2048 in all) and 2 highway layers; the bounds sit
# far above that (for research sizes) but below sizes that would only
# allocate memory and fail, e.g. lstm.dim = 2000000 (tens of GB).
SIZE_LIMITS = {
    "lstm.dim": 32768,
    "lstm.projection_dim": 16384,
    "lstm.n_layers": 32,
    "char_cnn.embedding.dim": 4096,
    "char_cnn.max_characters_per_token": 1000,
    "char_cnn.filters (number of filters)": 64,
    "char_cnn.filters (count of one filter)": 32768,
    "char_cnn.n_highway": 32,
    # ELMoForManyLangs models (kind "efml"): their token embedder's sizes.
    "token_embedder.char_dim": 4096,
    "token_embedder.n_chars": 2**21,
    "token_embedder.word_dim": 4096,
    "token_embedder.n_words": 2**24,
    "token_embedder.max_characters_per_token": 1000,
    "token_embedder.filters (number of filters)": 64,
    "token_embedder.filters (count of one filter)": 32768,
    "token_embedder.n_highway": 32,
}
# The whole model: 2**30 float32 weights = 4 GiB (the published original has
# 93.6 million).
MAX_PARAMETERS = 2**30


def count_parameters(options):
    """The number of float weights a validated options dict calls for.

    Exact for the bilm-tf kind; for an ELMoForManyLangs model (which always
    projects, after an optional word embedding) the same sum with its tables.
    """
    lstm = options["lstm"]
    dim, proj = lstm["dim"], lstm["projection_dim"]
    if is_efml(options):
        emb = options["token_embedder"]
        char_dim, n_chars = emb["char_dim"], emb["n_chars"]
        words = emb["n_words"] * emb["word_dim"]
        project = True
    else:
        emb = options["char_cnn"]
        char_dim, n_chars = emb["embedding"]["dim"], emb["n_characters"]
        words = 0
        project = has_projection(options)
    f = sum(count for _, count in emb["filters"])
    total = n_chars * char_dim + words
    total += sum(width * char_dim * count + count for width, count in emb["filters"])
    total += emb["n_highway"] * (2 * f * f + 2 * f)
    if project:
        width = f + (emb["word_dim"] if is_efml(options) else 0)
        total += width * proj + proj
    # Per layer and direction: W_0 over [x, h_prev] (both P wide), B, W_P_0.
    total += 2 * lstm["n_layers"] * (2 * proj * 4 * dim + 4 * dim + dim * proj)
    return total


def check_sizes(options, source="options"):
    """Refuse sizes past SIZE_LIMITS or MAX_PARAMETERS (a validated dict)."""
    lstm = options["lstm"]
    values = {
        "lstm.dim": lstm["dim"],
        "lstm.projection_dim": lstm["projection_dim"],
        "lstm.n_layers": lstm["n_layers"],
    }
    if is_efml(options):
        emb = options["token_embedder"]
        prefix = "token_embedder."
        values.update(
            {prefix + key: emb[key] for key in ("char_dim", "n_chars", "word_dim", "n_words")}
        )
    else:
        emb = options["char_cnn"]
        prefix = "char_cnn."
        values[prefix + "embedding.dim"] = emb["embedding"]["dim"]
    values[prefix + "max_characters_per_token"] = emb["max_characters_per_token"]
    values[prefix + "filters (number of filters)"] = len(emb["filters"])
    values[prefix + "filters (count of one filter)"] = max(count for _, count in emb["filters"])
    values[prefix + "n_highway"] = emb["n_highway"]
    for name, value in values.items():
        if value > SIZE_LIMITS[name]:
            raise InputError(
                f"{source}: option {name} = {value} is over the limit of "
                f"{SIZE_LIMITS[name]} (keras_elmo.options.SIZE_LIMITS)."
            )
    total = count_parameters(options)
    if total > MAX_PARAMETERS:
        raise InputError(
            f"{source}: these sizes need {total:,} weights, over the limit of "
            f"{MAX_PARAMETERS:,} (4 GiB of float32; keras_elmo.options.MAX_PARAMETERS)."
        )


def n_filters(options):
    """F, the width of the char-CNN output (sum of the filter counts)."""
    return sum(count for _, count in options["char_cnn"]["filters"])


def has_projection(options):
    """The char-CNN projection exists only when F != P (see the spec)."""
    return n_filters(options) != options["lstm"]["projection_dim"]
