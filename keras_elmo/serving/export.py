"""SavedModel export for stock TensorFlow Serving: raw text in, ELMo vectors out.

`export_saved_model(layer_or_model, export_dir)` writes
`EXPORT_DIR/<version>/saved_model.pb` + `variables/` (the layout TensorFlow
Serving watches) from an `ElmoLayer`, or from a Keras model holding exactly
one. The export is a plain `tf.Module`: loading it needs TensorFlow only (no
Keras, no keras_elmo), and by default the graph uses core TensorFlow ops only
(no `py_function`), so any stock `tensorflow_model_server` runs it.

The signatures and outputs are those of TF Hub's ELMo module (google/elmo/2):
`serving_default` (also `default`) for sentences, `tokens` for tokens plus
`sequence_len` (`SIGNATURE_NAMES`); docs/serving.md, "Signatures", is their
reference.

The export always runs stateless (zero, or the `warm_up`, initial state per
call) and without dropout, whatever the source layer's settings.

Bounded work: each signature first checks the request against the export's
limits (`max_batch_size`, `max_tokens_per_sentence`, `max_tokens_per_request`,
see `keras_elmo.limits`; defaults `limits.SERVING_DEFAULTS`, stored in the
export's metadata) and fails with `InvalidArgumentError` naming the limit
and the request's size before any model work. The `tokens` signature also
requires `sequence_len` to have one entry per row, each in [0, T].
"""

import json
import os
import shutil
import tempfile

from keras_elmo.errors import InputError, require_tensorflow
from keras_elmo.text import tokenization

# A SavedModel is a TensorFlow graph: on JAX or PyTorch, this instead.
EXPORT_INSTEAD = "save a .keras file (model.save), which loads on every backend"
METADATA_DIR = "assets.extra"
METADATA_FILE = "keras_elmo.json"
SIGNATURE_NAMES = ("serving_default", "default", "tokens")


# ---------------------------------------------------------------- serving copy
# What the export computes, whatever the source layer's settings: the source
# layer's `clone` with these (the signatures check the export's own limits
# before the layer runs). The token cache only saves CNN time (its vectors
# are the CNN's): the export always runs the char CNN, so it serves any token.
SERVING_SETTINGS = {
    "output_mode": "dict",
    "stateful": False,
    "dropout": 0.0,
    "dtype": "float32",
    "trainable": False,
    "max_batch_size": None,
    "max_tokens_per_sentence": None,
    "max_tokens_per_request": None,
}


def serving_copy(layer, **overrides):
    """A stateless, dropout-free, float32, dict-output clone of `layer` (an
    `ElmoLayer`), without its token cache; `overrides` go to `ElmoLayer.clone`."""
    return layer.clone(keep_token_cache=False, **{**SERVING_SETTINGS, **overrides})


# ---------------------------------------------------------------- the module
def _resolve_limits(limits):
    """The export's limits: SERVING_DEFAULTS, overridden by `limits` (None = unbounded)."""
    from keras_elmo import limits as limits_lib

    unknown = sorted(set(limits) - set(limits_lib.LIMIT_NAMES))
    if unknown:
        raise TypeError(
            f"export: unknown limit(s) {unknown}; the limits are {limits_lib.LIMIT_NAMES}."
        )
    resolved = {**limits_lib.SERVING_DEFAULTS, **limits}
    return {
        name: limits_lib.validate_limit(name, resolved[name], "export")
        for name in limits_lib.LIMIT_NAMES
    }


def _sequence_len_checks(sequence_len, batch, steps):
    """Assert ops: one `sequence_len` entry per row of `tokens`, each in [0, T]."""
    import tensorflow as tf

    from keras_elmo import limits as limits_lib

    n = tf.shape(sequence_len)[0]
    # (reduce_min of nothing is the largest int, which passes, as it should)
    shortest = tf.reduce_min(sequence_len)
    longest = limits_lib.longest_row(sequence_len)
    return [
        tf.debugging.Assert(
            tf.equal(n, batch),
            [
                tf.strings.format(
                    "keras_elmo: sequence_len has {} entries but tokens has {} rows; "
                    "give one length per row.",
                    (n, batch),
                )
            ],
            name="check_sequence_len_size",
        ),
        tf.debugging.Assert(
            tf.logical_and(shortest >= 0, longest <= steps),
            [
                tf.strings.format(
                    "keras_elmo: sequence_len values must be in [0, T], T={} (the width of "
                    "tokens); got values from {} to {}.",
                    (steps, shortest, longest),
                )
            ],
            name="check_sequence_len_values",
        ),
    ]


def build_serving_module(layer, tokenizer=tokenization.DEFAULT_TOKENIZER, **limits):
    """A `tf.Module` computing `layer`'s outputs; returns (module, signatures dict).

    The module owns the serving copy's `tf.Variable`s (saved once, as
    variables, never as constants) and two `tf.function`s, `default` and
    `tokens`, which are also the exported signatures. `limits`: any of
    `keras_elmo.limits.LIMIT_NAMES` (None: unbounded); the others take
    `limits.SERVING_DEFAULTS`.
    """
    import tensorflow as tf

    from keras_elmo import limits as limits_lib

    if tokenizer not in tokenization.TOKENIZERS:
        raise ValueError(
            f"Unknown tokenizer {tokenizer!r}; choose one of {tokenization.TOKENIZERS}."
        )
    if tokenizer == "tf_text":
        # Fail here, naming the extra, not inside the signature's tracing.
        tokenization.import_tensorflow_text('export tokenizer "tf_text"')
    from keras_elmo.layers.elmo_layer import find_elmo_layer

    bounds = _resolve_limits(limits)
    serving = serving_copy(find_elmo_layer(layer))
    keys = serving.sequence_keys() + ["default", "sequence_len"]

    def outputs(tokens):
        out = serving(tokens, training=False)
        result = {}
        for key in keys:
            dtype = tf.int32 if key == "sequence_len" else tf.float32
            result[key] = tf.identity(tf.cast(out[key], dtype), name=key)
        return result

    def token_checks(batch, longest):
        return limits_lib.token_checks(
            batch, longest, bounds["max_tokens_per_sentence"], bounds["max_tokens_per_request"]
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="default")])
    def default(default):
        # The batch size is checked before tokenizing, the token counts on the
        # ragged split, before it is padded to a dense tensor.
        batch = tf.shape(default)[0]
        sentences = limits_lib.after(
            limits_lib.batch_checks(batch, bounds["max_batch_size"]), default
        )
        ragged = tokenization.tokenize_ragged(sentences, tokenizer)
        checks = token_checks(batch, limits_lib.longest_row(ragged.row_lengths()))
        return outputs(limits_lib.after(checks, ragged).to_tensor(default_value=""))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="tokens"),
            tf.TensorSpec([None], tf.int32, name="sequence_len"),
        ]
    )
    def tokens(tokens, sequence_len):
        batch, steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
        checks = limits_lib.batch_checks(batch, bounds["max_batch_size"])
        checks += _sequence_len_checks(sequence_len, batch, steps)
        # The padded width T counts: every output holds batch x T positions.
        checks += token_checks(batch, steps)
        tokens = limits_lib.after(checks, tokens)
        sequence_len = limits_lib.after(checks, sequence_len)
        positions = tf.range(steps)[None, :]
        tokens = tf.where(positions < sequence_len[:, None], tokens, "")
        return outputs(tokens)

    module = tf.Module(name="keras_elmo_serving")
    variables = []
    for var in serving.variables:
        value = var.value
        if not isinstance(value, tf.Variable):
            raise TypeError(f"export: {var.path} is not backed by a tf.Variable ({type(value)}).")
        variables.append(value)
    module.elmo_variables = variables
    # ELMoForManyLangs lexicons: core StaticHashTables the functions read;
    # the module must track them for tf.saved_model.save to keep them.
    module.elmo_lookup_tables = list(getattr(serving.token_encoder, "lookup_tables", ()))
    module.default = default
    module.tokens = tokens
    module.limits = bounds  # (a plain dict: not saved; the metadata file holds it)
    text_fn = default.get_concrete_function()
    signatures = {
        "serving_default": text_fn,
        "default": text_fn,
        "tokens": tokens.get_concrete_function(),
    }
    return module, signatures


# ---------------------------------------------------------------- request batching
BATCHING_FILE = "batching_parameters.txt"
# TF Serving's request batching (--enable_batching --batching_parameters_file),
# sized from the shipped model's latency per batch size, measured by
# benchmarks/bench_serving_batch.py (the table and the reasoning are in
# docs/scaling-out.md): past 64 sentences, sentences/s barely rise while a
# batch's latency keeps growing, so 64 is the batch cap.
# Allowed sizes keep the padding rows that round a merged batch up cheap.
BATCHING = {
    "max_batch_size": 64,
    "allowed_batch_sizes": (8, 16, 32, 64),
    # A lone request waits at most 5 ms for company: a quarter of a lone sentence's cost.
    "batch_timeout_micros": 5000,
    # About 2 s of queued work (16 full batches) before requests are refused.
    "max_enqueued_batches": 16,
    "num_batch_threads": 4,
}


def batching_parameters(limits):
    """TF Serving's batching_parameters.txt for this export (text protobuf).

    The export's request limits apply to the merged batch the server builds:
    the batch cap stays within `max_batch_size`, and the file says how many
    tokens per sentence a full merged batch may average under
    `max_tokens_per_request`.
    """
    cap = BATCHING["max_batch_size"]
    if limits.get("max_batch_size") is not None:
        cap = min(cap, limits["max_batch_size"])
    sizes = [size for size in BATCHING["allowed_batch_sizes"] if size < cap] + [cap]
    per_request = limits.get("max_tokens_per_request")
    lines = [
        "# TensorFlow Serving request batching for this ELMo export (keras_elmo).",
        "# tensorflow_model_server --enable_batching \\",
        "#   --batching_parameters_file=<this version>/assets.extra/batching_parameters.txt",
        "# Set num_batch_threads to the serving machine's CPU cores. See docs/scaling-out.md.",
    ]
    if per_request is not None:
        lines.append(
            f"# The export's max_tokens_per_request ({per_request}) applies to a merged batch: "
            f"{cap} sentences pass if they average <= {per_request // cap} tokens."
        )
    lines += [
        f"max_batch_size {{ value: {cap} }}",
        f"batch_timeout_micros {{ value: {BATCHING['batch_timeout_micros']} }}",
        f"max_enqueued_batches {{ value: {BATCHING['max_enqueued_batches']} }}",
        f"num_batch_threads {{ value: {BATCHING['num_batch_threads']} }}",
    ]
    lines += [f"allowed_batch_sizes: {size}" for size in sizes]
    # The "tokens" signature's [batch, max_len] differs in length between requests.
    lines.append("pad_variable_length_inputs: true")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing
def check_export_dir(export_dir, version=None):
    """Refuse an export base that is not a directory, or a `version` already there.

    Cheap, creates nothing: run before any model work (`export_saved_model`
    does; the command line does before it loads TensorFlow). The checks are
    made again when the version is written.
    """
    export_dir = os.fspath(export_dir)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        raise InputError(f"export: version must be a non-negative integer, got {version!r}.")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise InputError(
            f"export: {export_dir} exists and is not a directory; give the base directory "
            "the versions go into."
        )
    if version is not None and os.path.exists(os.path.join(export_dir, str(version))):
        raise InputError(
            f"export: {os.path.join(export_dir, str(version))} already exists; "
            "pick another --version."
        )


def _version_path(export_dir, version):
    check_export_dir(export_dir, version)
    try:
        os.makedirs(export_dir, exist_ok=True)
    except OSError as err:
        raise InputError(f"export: cannot create {export_dir}: {err.strerror}.") from None
    if version is None:
        existing = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
        version = max(existing, default=0) + 1
    path = os.path.join(export_dir, str(version))
    if os.path.exists(path):
        raise InputError(f"export: {path} already exists; pick another --version.")
    return version, path


def export_saved_model(
    layer_or_model, export_dir, version=None, tokenizer=tokenization.DEFAULT_TOKENIZER, **limits
):
    """Writes a SavedModel of an ELMo layer that stock TensorFlow Serving serves.

    The export is a plain `tf.Module` with TF Hub's ELMo signatures,
    `serving_default` (also `default`: sentences) and `tokens` (tokens and
    `sequence_len`), inputs and outputs as in docs/serving.md,
    "Signatures". Loading it needs
    TensorFlow only (no Keras, no keras_elmo), and unless
    `tokenizer="tf_text"` the graph uses core TensorFlow ops only. The
    export always runs stateless, without dropout and in float32, whatever
    the source layer's settings; every request is first checked against
    the export's limits (an `InvalidArgumentError` naming the limit, before
    any model work). A metadata file (`assets.extra/keras_elmo.json`) and
    TensorFlow Serving's `batching_parameters.txt` are written beside it
    (docs/serving.md).

    Args:
        layer_or_model: an `ElmoLayer`, or a Keras model containing exactly
            one (its other layers are not exported).
        export_dir: str or path-like. The model base path TensorFlow Serving
            watches; created if missing.
        version: int or `None`. The version directory's number. Defaults to
            `None`: 1, or one more than the highest version already there.
        tokenizer: str. The in-graph tokenizer of the sentence signatures:
            `"whitespace"` (as TF Hub's module), `"punctuation"` (PTB-like
            rules, core ops) or `"tf_text"` (TensorFlow Text's
            `UnicodeScriptTokenizer`, as in `ElmoTokenizer`; needs the
            tf-text extra, and the server and every loader
            then need the tensorflow-text ops). Defaults to `"whitespace"`.
        **limits: `max_batch_size`, `max_tokens_per_sentence`,
            `max_tokens_per_request`: the request limits (see
            `keras_elmo.limits`). Each defaults to
            `keras_elmo.limits.SERVING_DEFAULTS`; `None` makes it unbounded.
            The source layer's own limits are not used.

    Returns:
        The path of the version directory written, `export_dir/<version>`.
        It appears whole (written beside it, then renamed), so a watching
        server never sees half an export.

    Example:

    >>> import os
    >>> import tensorflow as tf
    >>> import keras_elmo
    >>> elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en")
    >>> path = keras_elmo.export_saved_model(elmo, "elmo_export")
    >>> os.path.relpath(path, "elmo_export")  # the first version
    '1'
    >>> served = tf.saved_model.load(path)
    >>> out = served.signatures["serving_default"](default=tf.constant(["The cat sat .", "Hi !"]))
    >>> tuple(out["elmo"].shape), out["sequence_len"].numpy().tolist()
    ((2, 4, 256), [4, 2])
    """
    require_tensorflow("SavedModel export", EXPORT_INSTEAD)
    import tensorflow as tf

    import keras_elmo
    from keras_elmo.layers.elmo_layer import find_elmo_layer

    export_dir = os.path.abspath(os.fspath(export_dir))
    check_export_dir(export_dir, version)  # before the model work
    module, signatures = build_serving_module(layer_or_model, tokenizer, **limits)
    serving_layer_options = find_elmo_layer(layer_or_model).options
    version, path = _version_path(export_dir, version)
    # Write beside the target and rename, so that a watching server never
    # sees a half-written version (it ignores non-numeric directory names).
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        os.makedirs(os.path.join(tmp, METADATA_DIR), exist_ok=True)
        metadata = {
            "keras_elmo_version": keras_elmo.__version__,
            "tensorflow_version": tf.__version__,
            "tokenizer": tokenizer,
            "requires_tensorflow_text": tokenizer == "tf_text",
            "signatures": {
                "serving_default": {"inputs": {"default": "string [batch]"}},
                "default": {"inputs": {"default": "string [batch]"}},
                "tokens": {
                    "inputs": {"tokens": "string [batch, max_len]", "sequence_len": "int32 [batch]"}
                },
            },
            "outputs": list(signatures["tokens"].structured_outputs),
            "options": serving_layer_options,
            # None: unbounded. A request over a limit is an InvalidArgumentError.
            "limits": module.limits,
        }
        with open(os.path.join(tmp, METADATA_DIR, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=1)
        with open(os.path.join(tmp, METADATA_DIR, BATCHING_FILE), "w", encoding="utf-8") as f:
            f.write(batching_parameters(module.limits))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def export_from_files(
    source, export_dir, version=None, tokenizer=tokenization.DEFAULT_TOKENIZER, **limits
):
    """Export the model of `source`: a `ModelSource`, `(options_file, weight_file)`
    (the original format), a model directory or a `.keras` file."""
    from keras_elmo.checkpoints.model_source import ModelSource

    require_tensorflow("SavedModel export", EXPORT_INSTEAD)
    check_export_dir(export_dir, version)  # before the model loads
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError("export: source must be (options_file, weight_file) or a .keras path.")
        source = ModelSource(options_file=source[0], weight_file=source[1])
    elif not isinstance(source, ModelSource):
        path = os.fspath(source)
        source = ModelSource(preset=path) if os.path.isdir(path) else ModelSource(keras_file=path)
    from keras_elmo.layers.elmo_layer import ElmoLayer

    layer = ElmoLayer.from_source(source.check())
    return export_saved_model(layer, export_dir, version=version, tokenizer=tokenizer, **limits)
