"""ELMoForManyLangs (EFML) model directories -> keras_elmo options, lexicons and weights.

An EFML model directory (HIT-SCIR's ELMoForManyLangs, 44 languages from the
CoNLL 2018 shared task) holds:

- `config.json`: training arguments; only `config_path` is read, naming the
  model config. As EFML does, it is looked for as given (relative to the
  directory), then by its file name in the directory, then by its file name
  among EFML's own `configs/` (the published zips ship none and name an
  absolute path on the authors' machine; `PACKAGE_CONFIGS` holds EFML's two
  config files' contents, which are identical);
- `char.dic`, `word.dic`: `token<TAB>id` lines; EFML strips each line first,
  so an entry whose token is whitespace loses it, and a line left with only
  an id is read as U+3000 (the ideographic space);
- `token_embedder.pkl`, `encoder.pkl`: PyTorch state dicts (read without
  torch by `torch_pickle`).

`read_model(model_dir)` reads all of it into an `EfmlModel` (numpy arrays,
dicts); `assign_weights(model, token_encoder, bilm)` writes the arrays into
built keras_elmo layers (duck-typed: this module imports no layer), checking
every name and shape against one table.
"""

import dataclasses
import json
import os

import numpy as np

from keras_elmo import options as options_lib
from keras_elmo.checkpoints import torch_pickle
from keras_elmo.checkpoints.original import Port, SlotWriter
from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.text import characters

# EFML's batcher (frontend.create_one_batch) reads these entries (the
# begin- and end-of-word slots: options.EFML_BEGIN_OF_WORD / _END_OF_WORD).
CHAR_SPECIALS = options_lib.EFML_CHAR_SPECIALS
WORD_SPECIALS = options_lib.EFML_WORD_SPECIALS
BOS, EOS = "<bos>", "<eos>"

_PUBLISHED_CONFIG = {
    "encoder": {
        "name": "elmo",
        "projection_dim": 512,
        "cell_clip": 3,
        "proj_clip": 3,
        "dim": 4096,
        "n_layers": 2,
    },
    "token_embedder": {
        "name": "cnn",
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 2,
        "word_dim": 100,
        "char_dim": 50,
        "max_characters_per_token": 50,
    },
    "classifier": {"name": "sampled_softmax", "n_samples": 8192},
    "dropout": 0.1,
}
# The files in elmoformanylangs/configs (0.0.4.post2), by name: every
# published model was trained with these hyperparameters.
PACKAGE_CONFIGS = {
    "cnn_50_100_512_4096_sample.json": _PUBLISHED_CONFIG,
    "cnn_0_100_512_4096_sample.json": _PUBLISHED_CONFIG,
}


def locate_model_dir(root):
    """The EFML model directory at `root` or in its only subdirectory (an unpacked zip)."""
    root = os.fspath(root)
    if is_model_dir(root):
        return root
    subdirs = [e.path for e in os.scandir(root) if e.is_dir()] if os.path.isdir(root) else []
    found = [d for d in subdirs if is_model_dir(d)]
    if len(found) == 1:
        return found[0]
    raise InputError(
        f"{root}: no ELMoForManyLangs model (config.json + char.dic) here or in one subdirectory."
    )


UNSUPPORTED = (
    "keras_elmo loads EFML models with the 'cnn' token embedder and the 'elmo' encoder; "
    "every published EFML model uses those. The {section} {name!r} is EFML's "
    "{what}, which none of the published models uses and keras_elmo does not support."
)


@dataclasses.dataclass
class EfmlModel:
    """Everything read from one EFML directory."""

    # As read from the directory:
    model_dir: str
    config: dict  # the model config (encoder, token_embedder, ...)
    config_source: str  # where it was found
    token_embedder: dict  # state dict name -> numpy array
    encoder: dict
    # Derived from it and checked against the weights:
    options: dict  # keras_elmo options (kind "efml"), validated
    char_lexicon: dict  # str -> int
    word_lexicon: dict  # str -> int, {} without a word embedding


def is_model_dir(path):
    """True for a directory that looks like an EFML model (config.json + char.dic)."""
    path = os.fspath(path)
    return all(os.path.isfile(os.path.join(path, name)) for name in ("config.json", "char.dic"))


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err}).") from None


def find_config(model_dir):
    """(model config dict, where it came from) for an EFML directory."""
    top = os.path.join(model_dir, "config.json")
    args = _read_json(top)
    named = args.get("config_path") if isinstance(args, dict) else None
    if not isinstance(named, str) or not named:
        raise InputError(f"{top}: no 'config_path' naming the model config.")
    base = os.path.basename(named.replace("\\", "/"))
    # EFML's order: as given (an absolute path stays absolute), its file name
    # in the directory, its file name among the package's configs.
    for candidate in (os.path.join(model_dir, named), os.path.join(model_dir, base)):
        if os.path.isfile(candidate):
            return _read_json(candidate), candidate
    if base in PACKAGE_CONFIGS:
        return json.loads(json.dumps(PACKAGE_CONFIGS[base])), f"EFML's configs/{base}"
    raise InputError(
        f"{top}: config_path {named!r} names a model config that is neither in {model_dir} nor "
        f"one of EFML's own ({', '.join(sorted(PACKAGE_CONFIGS))}); put the config file in the "
        "directory."
    )


def read_lexicon(path, specials):
    """`token<TAB>id` lines -> {token: id}, parsed as EFML parses them.

    Each line is stripped of surrounding whitespace (Python's str.strip, so
    Unicode whitespace too) and split on tabs; a line left with one field is
    the id of U+3000. A later line for the same token wins. Lines are split
    as EFML's codecs reader splits them (str.splitlines: also at U+2028,
    U+0085, ...); blank lines are skipped.
    """
    with open(path, "rb") as f:
        raw = f.read()
    text = characters.decode_utf8(raw, str(path))
    lexicon = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) == 1:
            fields.insert(0, "\u3000")
        if len(fields) != 2 or not fields[1].isdigit():
            raise InputError(f"{path}: line {number} is not 'token<TAB>id': {line[:60]!r}.")
        lexicon[fields[0]] = int(fields[1])
    missing = [name for name in specials if name not in lexicon]
    if missing:
        raise InputError(f"{path}: no entry for {', '.join(missing)} (EFML needs them).")
    return lexicon


def _section(config, name, source):
    section = config.get(name)
    if not isinstance(section, dict):
        raise InputError(f"{source}: missing the {name!r} section.")
    return section


def options_from_config(config, n_chars, n_words, source="EFML config"):
    """keras_elmo options (kind "efml") for an EFML model config + its table sizes."""
    emb = _section(config, "token_embedder", source)
    enc = _section(config, "encoder", source)
    if str(emb.get("name", "")).lower() != "cnn":
        raise InputError(
            f"{source}: "
            + UNSUPPORTED.format(
                section="token_embedder",
                name=emb.get("name"),
                what="character-biLSTM token embedder (LstmTokenEmbedder)",
            )
        )
    if str(enc.get("name", "")).lower() != "elmo":
        raise InputError(
            f"{source}: "
            + UNSUPPORTED.format(
                section="encoder", name=enc.get("name"), what="plain torch LSTM encoder (LstmbiLm)"
            )
        )
    if not emb.get("char_dim"):
        raise InputError(f"{source}: char_dim is 0 (a word-only model); not supported.")

    def clip(value):
        # EFML clips only when the value is truthy (`if self.memory_cell_clip_value:`).
        return value if value else None

    options = {
        "kind": options_lib.EFML_KIND,
        "lstm": {
            "dim": enc.get("dim"),
            "projection_dim": enc.get("projection_dim"),
            "n_layers": enc.get("n_layers"),
            "cell_clip": clip(enc.get("cell_clip")),
            "proj_clip": clip(enc.get("proj_clip")),
            # EFML's ElmobiLm adds each layer's input to its output from the
            # second layer on (always; no option).
            "use_skip_connections": True,
        },
        "token_embedder": {
            "char_dim": emb.get("char_dim"),
            "n_chars": n_chars,
            "word_dim": emb.get("word_dim") or 0,
            "n_words": n_words if emb.get("word_dim") else 0,
            "max_characters_per_token": emb.get("max_characters_per_token"),
            "activation": emb.get("activation", "relu"),
            "filters": emb.get("filters"),
            "n_highway": emb.get("n_highway", 0),
        },
    }
    return options_lib.validate_options(options, source=source)


def _check_ids(lexicon, rows, path, what):
    bad = [(token, i) for token, i in lexicon.items() if i >= rows]
    if bad:
        token, i = bad[0]
        raise InputError(
            f"{path}: id {i} of {token!r} is outside the {what} table of {rows} rows "
            f"({len(bad)} such entries); the lexicon does not belong to these weights."
        )


def read_model(model_dir):
    """Read an EFML directory (or a directory holding one) into an `EfmlModel`.

    No torch, no TensorFlow."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise MissingFileError(f"EFML model directory not found: {model_dir}")
    # An unpacked NLPL zip may hold the files in one subdirectory.
    model_dir = locate_model_dir(model_dir)
    config, config_source = find_config(model_dir)
    # Validate the kinds before touching the large files.
    options_from_config(config, 1, 1, source=config_source)
    char_lexicon = read_lexicon(os.path.join(model_dir, "char.dic"), CHAR_SPECIALS)
    word_dim = _section(config, "token_embedder", config_source).get("word_dim") or 0
    word_lexicon = {}
    if word_dim:
        word_path = os.path.join(model_dir, "word.dic")
        if not os.path.isfile(word_path):
            raise InputError(f"{model_dir}: the config has word_dim {word_dim} but no word.dic.")
        word_lexicon = read_lexicon(word_path, WORD_SPECIALS)
    states = {}
    for name in ("token_embedder", "encoder"):
        path = os.path.join(model_dir, f"{name}.pkl")
        if not os.path.isfile(path):
            raise InputError(f"{model_dir}: {name}.pkl is missing.")
        states[name] = torch_pickle.load_state_dict(path)
    token_state = states["token_embedder"]
    char_rows = _rows(token_state, "char_emb_layer.embedding.weight", model_dir)
    _check_ids(char_lexicon, char_rows, os.path.join(model_dir, "char.dic"), "char embedding")
    word_rows = 0
    if word_dim:
        word_rows = _rows(token_state, "word_emb_layer.embedding.weight", model_dir)
        _check_ids(word_lexicon, word_rows, os.path.join(model_dir, "word.dic"), "word embedding")
    options = options_from_config(config, char_rows, word_rows, source=config_source)
    return EfmlModel(
        model_dir=model_dir,
        config=config,
        config_source=config_source,
        token_embedder=states["token_embedder"],
        encoder=states["encoder"],
        options=options,
        char_lexicon=char_lexicon,
        word_lexicon=word_lexicon,
    )


def _rows(state, name, model_dir):
    if name not in state or state[name].ndim != 2:
        raise InputError(f"{model_dir}/token_embedder.pkl: no 2-D {name!r}.")
    return int(state[name].shape[0])


# ------------------------------------------------------------------ weights
# EFML's LSTM cell computes its four gate blocks in the order i, f, g, o
# (input, forget, cell input, output) along the 4D axis; keras_elmo's
# ProjectedLSTM uses TF1's i, j(=g), f, o. Same arithmetic otherwise:
# c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g), clip, h = clip(W_P (sigmoid(o) tanh(c))).
_EFML_TO_TF1_GATES = (0, 2, 1, 3)
# The forget bias ProjectedLSTM adds at run time (keras_elmo.layers.lstm.
# FORGET_BIAS; checkpoint modules import no layer module, a test checks that
# the two agree).
TF1_FORGET_BIAS = 1.0


def _gates_tf1(array):
    """Reorder the 4 gate blocks of axis 0 from EFML's i, f, g, o to TF1's i, j, f, o."""
    blocks = np.split(array, 4, axis=0)
    return np.concatenate([blocks[k] for k in _EFML_TO_TF1_GATES], axis=0)


def weight_table(model, token_encoder, bilm):
    """{pkl file: [Port]}: every weight, as `original.weight_table` lists the bilm-tf ones.

    A port's `dataset` is the state-dict name, its one slot the variable
    (and direction) it fills, `to_keras` the torch -> Keras transform.
    """
    opts = model.options["token_embedder"]
    lstm_opts = model.options["lstm"]
    p = lstm_opts["projection_dim"]
    table = {"token_embedder": [], "encoder": []}

    def add(file, name, shape, var, index=None, transform=lambda a: a):
        port = Port(name, tuple(shape), ((var, index),), to_keras=lambda a, t=transform: [t(a)])
        table[file].append(port)

    te = "token_embedder"
    add(
        te,
        "char_emb_layer.embedding.weight",
        (opts["n_chars"], opts["char_dim"]),
        token_encoder.char_embed,
    )
    if opts["word_dim"]:
        add(
            te,
            "word_emb_layer.embedding.weight",
            (opts["n_words"], opts["word_dim"]),
            token_encoder.word_embed,
        )
    for i, (width, count) in enumerate(opts["filters"]):
        # torch Conv1d weight (out, in, width) -> tf.nn.conv1d filters (width, in, out).
        add(
            te,
            f"convolutions.{i}.weight",
            (count, opts["char_dim"], width),
            token_encoder.conv_kernels[i],
            transform=lambda a: a.transpose(2, 1, 0),
        )
        add(te, f"convolutions.{i}.bias", (count,), token_encoder.conv_biases[i])
    n_filters = sum(count for _, count in opts["filters"])
    for k in range(opts["n_highway"]):
        # torch Linear weight (out, in) -> x @ W layout (in, out); the 2F
        # outputs are [nonlinear part, gate] as EFML splits them.
        add(
            te,
            f"highways._layers.{k}.weight",
            (2 * n_filters, n_filters),
            token_encoder.highway_kernels[k],
            transform=lambda a: a.T,
        )
        add(te, f"highways._layers.{k}.bias", (2 * n_filters,), token_encoder.highway_biases[k])
    # The projection reads [word vector, char features] (word first).
    add(
        te,
        "projection.weight",
        (p, opts["word_dim"] + n_filters),
        token_encoder.w_proj,
        transform=lambda a: a.T,
    )
    add(te, "projection.bias", (p,), token_encoder.b_proj)

    d = lstm_opts["dim"]
    for layer, lstm in enumerate(bilm.lstms):
        # Feature-major ProjectedLSTMs store W^T (see lstm.run_packed); the
        # batch-major layout is x @ W, i.e. torch's (out, in) transposed.
        def layout(a, fm=lstm.feature_major):
            return a if fm else a.T

        for direction, prefix in enumerate(("forward", "backward")):
            name = f"{prefix}_layer_{layer}"
            # Both torch Linear weights are (4D, in) with EFML's gate order.
            for part, var in (
                ("input_linearity", lstm.kernel),
                ("state_linearity", lstm.recurrent_kernel),
            ):
                add(
                    "encoder",
                    f"{name}.{part}.weight",
                    (4 * d, p),
                    var,
                    direction,
                    lambda a, f=layout: f(_gates_tf1(a)),
                )
            # EFML's only gate bias is state_linearity's (input_linearity has
            # none). ProjectedLSTM adds TF1's forget bias 1.0 at run time, so
            # 1.0 comes off the forget block here: sigmoid((b - 1) + 1).
            add(
                "encoder", f"{name}.state_linearity.bias", (4 * d,), lstm.bias, direction, _bias_tf1
            )
            add(
                "encoder",
                f"{name}.state_projection.weight",
                (p, d),
                lstm.projection,
                direction,
                lambda a, f=layout: f(a),  # torch stores (P, D): W_P transposed
            )
    return table


def _bias_tf1(array):
    bias = _gates_tf1(array).astype(np.float32)
    d = bias.shape[0] // 4
    bias[2 * d : 3 * d] -= np.float32(TF1_FORGET_BIAS)  # TF1 order: f is the third block
    return bias


def assign_weights(model, token_encoder, bilm):
    """Write an `EfmlModel`'s weights into a built EFML token encoder and biLM."""
    states = {"token_embedder": model.token_embedder, "encoder": model.encoder}
    used = {"token_embedder": set(), "encoder": set()}
    writer = SlotWriter()
    for file, ports in weight_table(model, token_encoder, bilm).items():
        where = os.path.join(model.model_dir, f"{file}.pkl")
        for port in ports:
            name, shape = port.dataset, port.shape
            if name not in states[file]:
                raise InputError(f"{where}: no {name!r} (expected shape {shape}).")
            array = states[file][name]
            if tuple(array.shape) != shape:
                raise InputError(
                    f"{where}: {name!r} has shape {tuple(array.shape)}, the config gives {shape}."
                )
            used[file].add(name)
            parts = port.to_keras(array.astype(np.float32))
            for (var, index), part in zip(port.slots, parts):
                writer.put(var, index, np.asarray(part, dtype=np.float32))
    for file, state in states.items():
        extra = sorted(set(state) - used[file])
        if extra:
            raise InputError(
                f"{os.path.join(model.model_dir, file + '.pkl')}: unexpected entries {extra[:5]} "
                "for this config."
            )
    writer.assign_all()
