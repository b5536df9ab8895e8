"""The `keras-elmo` command line. Thin: parsing here, the work in the library.

    keras-elmo embed INPUT.txt OUTPUT.hdf5 [model] [--all|--top|--average] ...
    keras-elmo export EXPORT_DIR [model | --keras-file F] [--tokenizer T] ...
    keras-elmo build-vocab OUTPUT FILES... [--min-count N] [--max-size N]
    keras-elmo train FILES... --vocab V --output-dir D [sizes | --options O] ...
    keras-elmo perplexity FILES... --model-dir D
    keras-elmo beam-embed --input PATTERN --output-dir DIR [model] [layers] ... [Beam options]
    keras-elmo presets

One argparse tree; each command is a function `_run_<name>(args)` set as
the subparser's default, and most have a `_check_<name>(args)` that checks
what needs no model (input and output files, model names) before TensorFlow
is imported. Heavy imports (TensorFlow, Keras) happen inside the command
functions, so `--help`, argument errors and those checks answer at once.
Expected user errors (`keras_elmo.errors.ElmoError`) print one line and exit
2; Ctrl-C prints one line and exits 130; any other exception is a bug and
keeps its traceback.
"""

import argparse
import json
import os
import sys

DEFAULT_MODEL_NAME = "elmo-small-en"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


# How the model-source errors name each field on the command line.
MODEL_FLAGS = {
    "preset": "--model",
    "options_file": "--options-file",
    "weight_file": "--weight-file",
    "keras_file": "--keras-file",
    "efml_dir": "--model",
}


def _model_source(args, resolve=True):
    """The model a command reads, as a checked `ModelSource`.

    `--model` (a preset name or a model directory; default: the shipped
    elmo-small-en), the explicit pair `--options-file` + `--weight-file`,
    or `--keras-file` where the command has it; the rules are
    `model_source.check_choice`'s. With `resolve`, the local files: a
    preset (or a URL) is downloaded once, with a progress bar unless
    `--quiet`; no TensorFlow either way.
    """
    from keras_elmo.checkpoints import model_source
    from keras_elmo.errors import InputError

    fields = {
        "preset": args.model,
        "options_file": args.options_file,
        "weight_file": args.weight_file,
        "keras_file": getattr(args, "keras_file", None),
    }
    given = model_source.check_choice(fields, MODEL_FLAGS, default=DEFAULT_MODEL_NAME)
    if args.refresh and "keras_file" in given:
        raise InputError("--refresh downloads a preset or URL files again; not with --keras-file.")
    source = model_source.ModelSource(**given).check()
    if not resolve:
        return source
    return source.resolve(progress=not getattr(args, "quiet", False), refresh=args.refresh)


def _check_file(path, what):
    """A local file the command reads: it exists and is a file."""
    from keras_elmo.errors import InputError, MissingFileError

    if not os.path.exists(path):
        raise MissingFileError(f"{what} not found: {path}")
    if not os.path.isfile(path):
        raise InputError(f"{what} {path} is not a file.")


def _expand(patterns):
    """Glob patterns -> files, in order; a pattern that matches nothing is an error."""
    import glob

    from keras_elmo.errors import MissingFileError

    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise MissingFileError(f"no file matches {pattern!r}.")
        files += matches
    return files


# ------------------------------------------------------------------ commands


def _check_embed(args):
    from keras_elmo.jobs import embed_file, parts, reader

    reader.check_input_file(args.input_file)
    embed_file.check_output_path(args.output_file, [args.input_file])
    parts.check_partial_dir(parts.partial_dir(args.output_file), args.resume, args.stateful)
    args.source = _model_source(args)


def _run_embed(args):
    from keras_elmo.jobs import embed_file, parts

    try:
        embed_file.embed_file(
            args.input_file,
            args.output_file,
            source=args.source,
            layers=args.layers,
            batch_size=args.batch_size,
            stateful=args.stateful,
            progress=not args.quiet,
            resume=args.resume,
            flush_seconds=args.flush_seconds,
            matmul_dtype=args.matmul_dtype,
        )
    except KeyboardInterrupt:
        # embed_file has committed the finished batches; say where they are.
        folder = parts.partial_dir(args.output_file)
        print(
            f"\nkeras-elmo embed: interrupted; finished batches are kept in {folder}/ "
            "(rerun the same command with --resume to continue)",
            file=sys.stderr,
        )
        return 130
    return 0


def _check_export(args):
    from keras_elmo.serving import export

    export.check_export_dir(args.export_dir, args.version)
    args.source = _model_source(args)


def _run_export(args):
    from keras_elmo.serving import export

    source = args.source
    limits = {
        "max_batch_size": args.max_batch_size,
        "max_tokens_per_sentence": args.max_tokens_per_sentence,
        "max_tokens_per_request": args.max_tokens_per_request,
    }
    path = export.export_from_files(
        source, args.export_dir, version=args.version, tokenizer=args.tokenizer, **limits
    )
    print(path)
    return 0


def _check_beam_embed(args):
    # Each worker resolves the model itself (and reads other filesystems);
    # --refresh refreshes this machine's cache now, each worker then reads its own.
    args.source = _model_source(args, resolve=False)
    if args.refresh:
        args.source.resolve(progress=not args.quiet, refresh=True)


def _run_beam_embed(args):
    from keras_elmo.integrations import beam

    manifest = beam.embed_corpus(
        args.input,
        args.output_dir,
        args.source,
        layers=args.layers,
        tokenizer=args.tokenizer,
        file_format=args.format,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        matmul_dtype=args.matmul_dtype,
        pipeline_options=args.beam_options,
        wait=not args.no_wait,
    )
    if not args.quiet:
        lines = sum(entry["lines"] or 0 for entry in manifest["inputs"])
        state = "complete" if manifest["complete"] else "submitted"
        print(
            f"{state}: {len(manifest['inputs'])} files, {lines} lines, "
            f"{len(manifest['shards'])} shards -> {args.output_dir}"
        )
    return 0


def _run_build_vocab(args):
    from keras_elmo.training import data

    counts = data.count_tokens(_expand(args.files))
    vocab = data.build_vocab(counts, min_count=args.min_count, max_size=args.max_size)
    data.write_vocab(vocab, args.output)
    total = sum(counts.values())
    covered = sum(counts[w] for w in vocab[len(data.SPECIAL_TOKENS) :])
    print(
        f"{len(vocab)} entries; covers {covered / max(total, 1):.2%} "
        f"of {total} tokens -> {args.output}"
    )
    return 0


def _check_train(args):
    from keras_elmo.training import data

    if args.options:
        _check_file(args.options, "options file")
    _check_file(args.vocab, "vocabulary file")
    args.vocab_entries = data.load_vocab(args.vocab)
    args.train_paths = _expand(args.train_files)
    args.heldout_paths = _expand(args.heldout_files)


def _run_train(args):
    from keras_elmo import options as options_lib
    from keras_elmo.training import loop

    if args.options:
        options = options_lib.load_options(args.options)
    else:
        options = options_lib.make_options(
            args.lstm_dim,
            args.projection_dim,
            n_layers=args.n_layers,
            n_highway=args.n_highway,
            char_dim=args.char_dim,
            filters=json.loads(args.filters),
        )
    info = loop.run_training(
        options,
        args.train_paths,
        args.vocab_entries,
        args.output_dir,
        checkpoint_dir=args.checkpoint_dir,
        batch_size=args.batch_size,
        max_len=args.max_len,
        steps_per_epoch=args.steps_per_epoch,
        epochs=args.epochs,
        max_minutes=args.max_minutes,
        n_negative=args.n_negative,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        dropout=args.dropout,
        seed=args.seed,
        shuffle_buffer=args.shuffle_buffer,
        heldout_files=args.heldout_paths,
        log_every=args.log_every,
        log_stream=None if args.quiet else sys.stdout,
    )
    print(json.dumps(info, indent=1))
    return 0


def _check_perplexity(args):
    from keras_elmo.errors import InputError, MissingFileError

    if not os.path.exists(args.model_dir):
        raise MissingFileError(f"model directory not found: {args.model_dir}")
    if not os.path.isdir(args.model_dir):
        raise InputError(f"--model-dir {args.model_dir} is not a directory.")
    if args.vocab:
        _check_file(args.vocab, "vocabulary file")
    args.paths = _expand(args.files)


def _run_perplexity(args):
    from keras_elmo.training import model_dir

    results = model_dir.perplexity_of_files(
        args.model_dir,
        args.paths,
        vocab_file=args.vocab,
        batch_size=args.batch_size,
        max_len=args.max_len,
    )
    print(json.dumps(results, indent=1))
    return 0


# ------------------------------------------------------------------ parser


# ------------------------------------------------------------------ shared options
# Each option several commands take is defined once here, its choices and
# defaults read from the library.


def _add_model_args(parser, keras_file=False):
    parser.add_argument(
        "--model",
        metavar="NAME|DIR",
        help=f"a preset name (default: {DEFAULT_MODEL_NAME}, shipped with the package; the "
        "published ones are downloaded once into the cache; `keras-elmo presets` lists "
        "them) or a model directory (options.json + weights.hdf5)",
    )
    parser.add_argument("--options-file", help="options.json, with --weight-file (not --model)")
    parser.add_argument("--weight-file", help="weights.hdf5, with --options-file")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="download the preset (or the URL files) again even if cached, and pin the new "
        "files' SHA-256 (a cached file is checked against the SHA-256 recorded at its first "
        "download)",
    )
    if keras_file:
        parser.add_argument(
            "--keras-file", help="a .keras file holding an ElmoLayer or a model with one"
        )


LAYER_HELP = {
    "all": "all layers, shape (n_layers + 1, T, 2P)",
    "top": "the top LSTM layer, (T, 2P)",
    "average": "the average of all layers, (T, 2P)",
}


def _add_layer_choice(parser):
    from keras_elmo.jobs.output import DEFAULT_LAYERS, LAYER_CHOICES

    which = parser.add_mutually_exclusive_group()
    for choice in LAYER_CHOICES:
        help_ = LAYER_HELP[choice] + (" (default)" if choice == DEFAULT_LAYERS else "")
        which.add_argument(
            f"--{choice}", dest="layers", action="store_const", const=choice, help=help_
        )
    parser.set_defaults(layers=DEFAULT_LAYERS)


def _add_embed_batch_size(parser):
    from keras_elmo.jobs.output import BATCH_SIZE

    parser.add_argument(
        "--batch-size", type=_positive_int, default=BATCH_SIZE, help="sentences per model call"
    )


def _add_matmul_dtype(parser, model_default=False):
    """--matmul-dtype; `model_default`: None (the model's own) instead of float32."""
    from keras_elmo.options import MATMUL_DTYPES

    default = None if model_default else MATMUL_DTYPES[0]
    said = "the model's own, float32" if model_default else "float32: the original numbers"
    parser.add_argument(
        "--matmul-dtype",
        "--lstm-matmul-dtype",  # its name in 0.2
        dest="matmul_dtype",
        choices=MATMUL_DTYPES,
        default=default,
        help=f"operand dtype of the model's matmuls and convolutions (default {said}). "
        "bfloat16: faster on CPUs with AVX512_BF16 or AMX, vectors within a fraction of a "
        "percent of float32, slower without those units (measured in the keras_elmo "
        "documentation, 'Lower precision')",
    )


def _add_tokenizer(parser, help_):
    from keras_elmo.text.tokenization import DEFAULT_TOKENIZER, TOKENIZERS

    parser.add_argument(
        "--tokenizer",
        default=DEFAULT_TOKENIZER,
        choices=TOKENIZERS,
        help=help_ + f" (default: {DEFAULT_TOKENIZER})",
    )


EMBED_EPILOG = """\
if interrupted:
  OUTPUT is replaced only by the complete file; an interrupted run keeps its
  finished batches in OUTPUT.partial/: rerun the same command with --resume to
  continue (not with --stateful), or delete OUTPUT.partial/ to start over.
  More in the keras_elmo documentation, 'An interrupted embed job'.
"""


def _add_embed(sub):
    from keras_elmo.jobs.embed_file import FLUSH_SECONDS

    p = _add_parser(
        sub,
        "embed",
        help="embed a file of sentences into an hdf5 file",
        description="Embed a file of sentences (one per line; \\n, \\r\\n or \\r line ends, "
        "a UTF-8 BOM is dropped) into an hdf5 file.",
        epilog=EMBED_EPILOG,
    )
    p.add_argument("input_file", help="one whitespace-tokenized sentence per line (UTF-8)")
    p.add_argument("output_file", help="hdf5 file to write")
    _add_model_args(p)
    _add_layer_choice(p)
    _add_embed_batch_size(p)
    p.add_argument(
        "--stateful",
        action="store_true",
        help="carry LSTM state across batches of consecutive lines, like the original "
        "(one process only: beam-embed is stateless)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run kept in OUTPUT.partial/ (same input, model, layers "
        "and batch size); starts from the beginning if there is none",
    )
    p.add_argument(
        "--flush-seconds",
        type=_non_negative_float,
        default=FLUSH_SECONDS,
        metavar="S",
        help="commit finished batches to OUTPUT.partial/ at least every S seconds, so a kill "
        "loses at most that much work (default %(default)g; 0: after every batch)",
    )
    _add_matmul_dtype(p)
    p.set_defaults(func=_run_embed, check=_check_embed)


def _add_beam_embed(sub):
    from keras_elmo.jobs.output import BEAM_FORMATS

    p = _add_parser(
        sub,
        "beam-embed",
        help="embed files on Apache Beam (needs the beam extra: pip install -e '.[beam]')",
        description="Embed every line of the input files on Apache Beam. Options this "
        "command does not know go to Beam (--runner, --direct_num_workers, Dataflow/Flink/"
        "Spark options).",
        # Beam's own options must never be taken for prefixes of ours.
        allow_abbrev=False,
    )
    p.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="PATTERN",
        help="input files (glob, local or any Beam filesystem); repeatable",
    )
    p.add_argument("--output-dir", required=True, help="manifest.json + shards go here")
    _add_model_args(p, keras_file=True)
    _add_layer_choice(p)
    _add_tokenizer(p, "how a line is split into tokens (whitespace: as embed)")
    p.add_argument(
        "--format", default=BEAM_FORMATS[0], choices=BEAM_FORMATS, help="the shards' format"
    )
    _add_embed_batch_size(p)
    p.add_argument(
        "--max-batch-tokens",
        type=_positive_int,
        default=None,
        help="also bound each model call to this many padded tokens (batches by tokens)",
    )
    _add_matmul_dtype(p, model_default=True)
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the job is submitted (remote runners); the manifest says when it is done",
    )
    p.set_defaults(func=_run_beam_embed, check=_check_beam_embed, pass_through=True)


def _add_export(sub):
    p = _add_parser(
        sub,
        "export",
        help="write a SavedModel for TensorFlow Serving",
        description="Write a SavedModel of an ELMo model for TensorFlow Serving: raw "
        "sentences in, ELMo vectors out (signatures serving_default and tokens); loading it "
        "needs TensorFlow only.",
    )
    p.add_argument("export_dir", help="base directory; the model goes to EXPORT_DIR/<version>")
    _add_model_args(p, keras_file=True)
    p.add_argument(
        "--version",
        type=_non_negative_int,
        default=None,
        help="the version directory's number (default: 1 more than the highest there, or 1)",
    )
    _add_tokenizer(
        p,
        "in-graph tokenizer for raw sentences: whitespace (split on whitespace), "
        "punctuation (PTB-like: punctuation and English clitics split off) or "
        "tf_text (TensorFlow Text's UnicodeScriptTokenizer; needs tensorflow-text wherever "
        "the export is loaded)",
    )
    from keras_elmo.limits import SERVING_DEFAULTS

    for name, what in (
        ("max_batch_size", "sentences per request"),
        ("max_tokens_per_sentence", "tokens of a request's longest sentence"),
        ("max_tokens_per_request", "sentences x tokens of the longest, per request"),
    ):
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=_limit,
            default=SERVING_DEFAULTS[name],
            metavar="N|none",
            help=f"request limit: {what} (default %(default)s; none: unbounded); a request "
            "over it fails with InvalidArgumentError before any model work",
        )
    p.set_defaults(func=_run_export, check=_check_export)


def _limit(text):
    """A request limit on the command line: a positive integer, or none (unbounded)."""
    if text.lower() == "none":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or none, got {text!r}"
        ) from None


def _add_build_vocab(sub):
    p = _add_parser(
        sub,
        "build-vocab",
        help="build an LM vocabulary from text files",
        description="Count tokens and write a biLM vocabulary file.",
    )
    p.add_argument("output", help="vocabulary file to write")
    p.add_argument("files", nargs="+", help="tokenized text files / globs, one sentence per line")
    p.add_argument("--min-count", type=_positive_int, default=1, help="keep tokens seen this often")
    p.add_argument(
        "--max-size",
        type=_positive_int,
        default=None,
        help="keep at most this many entries (the most frequent; default: all)",
    )
    p.set_defaults(func=_run_build_vocab, needs_tensorflow=False)


def _add_train(sub):
    p = _add_parser(
        sub,
        "train",
        help="train a biLM",
        description="Train a biLM (the ELMo language model) on tokenized text.",
    )
    p.add_argument(
        "train_files", nargs="+", help="tokenized text files / globs, one sentence per line"
    )
    p.add_argument("--vocab", required=True, help="vocabulary file (build-vocab)")
    p.add_argument(
        "--output-dir",
        required=True,
        help="the trained model goes here (options.json, weights.hdf5, vocab.txt, ...)",
    )
    p.add_argument("--checkpoint-dir", help="BackupAndRestore directory; rerun to resume")
    p.add_argument("--options", help="options.json; otherwise the size flags below")
    for flag, kind, default, help_ in (
        ("--lstm-dim", _positive_int, 1024, "LSTM cell size"),
        ("--projection-dim", _positive_int, 128, "LSTM projection size (vectors are twice it)"),
        ("--n-layers", _positive_int, 2, "LSTM layers"),
        ("--char-dim", _positive_int, 16, "character embedding size"),
        ("--filters", str, "[[1,32],[2,32],[3,64],[4,128],[5,256]]", "char CNN [width, count]s"),
        ("--n-highway", int, 1, "highway layers after the char CNN"),
        ("--batch-size", _positive_int, 32, "sentences per step"),
        ("--max-len", _positive_int, 50, "longer sentences are cut into pieces of this length"),
        ("--steps-per-epoch", _positive_int, 500, "steps per epoch, also the checkpoint interval"),
        ("--epochs", _positive_int, 10, "epochs"),
        ("--n-negative", int, 512, "negatives of the sampled softmax (0: full softmax)"),
        ("--learning-rate", float, 1e-3, "the optimizer's learning rate"),
        ("--clipnorm", float, 5.0, "gradient norm clip"),
        ("--dropout", float, 0.1, "dropout rate"),
        ("--seed", int, 0, "seeds the data order, negatives and dropout"),
        ("--shuffle-buffer", int, 10000, "lines shuffled in blocks of this many (0: file order)"),
        ("--log-every", int, 50, "log the loss every this many steps (0: never)"),
    ):
        p.add_argument(flag, type=kind, default=default, help=help_)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time")
    p.add_argument("--optimizer", default="adam", choices=("adam", "adagrad"), help="optimizer")
    p.add_argument(
        "--heldout-files",
        nargs="*",
        default=[],
        help="evaluate full-softmax perplexity on these after training",
    )
    p.set_defaults(func=_run_train, check=_check_train)


def _add_perplexity(sub):
    p = _add_parser(
        sub,
        "perplexity",
        help="held-out perplexity of a biLM",
        description="Held-out perplexity with the full softmax.",
    )
    p.add_argument("files", nargs="+", help="tokenized text, one sentence per line")
    p.add_argument(
        "--model-dir",
        required=True,
        help="an output dir of `keras-elmo train` (options.json, weights.hdf5, "
        "softmax.npz, vocab.txt)",
    )
    p.add_argument("--vocab", help="the vocabulary file (default: MODEL_DIR/vocab.txt)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="sentences per model call")
    p.add_argument(
        "--max-len",
        type=_positive_int,
        default=50,
        help="longer sentences are cut into pieces of this length",
    )
    p.set_defaults(func=_run_perplexity, check=_check_perplexity)


def _add_output_args(parser):
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log lines (hidden by default)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar or training log; results still go to stdout",
    )


def _run_presets(args):
    from keras_elmo.checkpoints import presets

    width = max(map(len, presets.PRESETS))
    for name, preset in presets.PRESETS.items():
        size = preset.approx_size or "download"
        print(f"{name:<{width}}  {size}: {preset.description}")
    return 0


def _add_presets(sub):
    p = _add_parser(
        sub,
        "presets",
        help="list the models --model takes by name",
        description="List the models --model (and ElmoLayer.from_preset) takes by name: the "
        "shipped elmo-small-en, and the published models, downloaded once into the cache "
        "($KERAS_ELMO_CACHE, else keras_elmo/ in Keras's cache directory) on first use.",
    )
    p.set_defaults(func=_run_presets, needs_tensorflow=False)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; each option's default after its help.

    Unless the help already says it, or there is none to say (None, a flag).
    The defaults of the commands are in their help, so that it stands on
    its own.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.nargs == 0  # a flag (store_true, store_const)
            or action.default in (None, [], argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


def _add_parser(sub, name, **kwargs):
    return sub.add_parser(name, formatter_class=_HelpFormatter, **kwargs)


def build_parser():
    """The whole `keras-elmo` argument tree."""
    from keras_elmo.version import __version__

    parser = argparse.ArgumentParser(prog="keras-elmo", description="ELMo vectors with Keras 3.")
    parser.add_argument("--version", action="version", version=f"keras-elmo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_embed,
        _add_export,
        _add_build_vocab,
        _add_train,
        _add_perplexity,
        _add_beam_embed,
        _add_presets,
    ):
        add(sub)
    for command in sub.choices.values():
        _add_output_args(command)
    return parser


def _import_tensorflow_quietly():
    """Imports TensorFlow with its log lines off; `--verbose` skips this.

    TF_CPP_MIN_LOG_LEVEL=3 silences the C++ messages logged while running
    (a real failure still arrives as a Python exception); it must be set
    before the import. The lines written while TensorFlow loads its
    libraries (oneDNN, CUDA stubs) come before its logging is set up and
    ignore that setting, so stderr's file descriptor points at a temporary
    file during the import; what it caught is shown if the import fails.
    """
    if "tensorflow" in sys.modules:
        return
    import logging
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError):  # no stderr (None, closed): nothing to hide
        import tensorflow  # noqa: F401
    else:
        try:
            with tempfile.TemporaryFile() as caught:
                os.dup2(caught.fileno(), 2)
                try:
                    import tensorflow  # noqa: F401
                except KeyboardInterrupt:
                    raise  # Ctrl-C: what TensorFlow printed so far stays hidden
                except BaseException:
                    os.dup2(saved, 2)
                    caught.seek(0)
                    sys.stderr.write(caught.read().decode("utf-8", "replace"))
                    raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    # TensorFlow's Python warnings (retracing, deprecations) and absl's.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


def _one_line_warnings(command):
    """`warnings.showwarning` for the command line: "keras-elmo CMD: warning: ..."."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"keras-elmo {command}: warning: {message}", file=file or sys.stderr)

    return show


# The commands that run TensorFlow programs, and what to do on another backend.
TENSORFLOW_ONLY_COMMANDS = {
    "export": "save a .keras file instead",
    "beam-embed": "use keras-elmo embed",
    "train": "fine-tune a pretrained model with ElmoLayer(fine_tune='all')",
    "perplexity": None,
}


def _require_tensorflow_for(command):
    """A TensorFlow-only command under another KERAS_BACKEND: one-line `BackendError`."""
    if command in TENSORFLOW_ONLY_COMMANDS:
        from keras_elmo.errors import require_tensorflow

        require_tensorflow(f"the {command} command", TENSORFLOW_ONLY_COMMANDS[command])


def main(argv=None):
    """Entry point; returns the process exit status.

    A user error prints one line and returns 2; Ctrl-C, at any moment
    (also while TensorFlow loads), prints one line and returns 130.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(
        sys.argv[1:] if argv is None else [str(a) for a in argv]
    )
    # Only beam-embed takes options it does not know: they are Beam's.
    if unknown and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.beam_options = unknown
    import warnings

    from keras_elmo.errors import ElmoError

    try:
        with warnings.catch_warnings():
            # Warnings meant for this run (bfloat16 on a CPU without bf16
            # units) as one line, not a source location inside the library.
            warnings.showwarning = _one_line_warnings(args.command)
            # What needs no model (files, names) is checked before TensorFlow.
            if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
                _require_tensorflow_for(args.command)  # before any file or download
            check = getattr(args, "check", None)
            if check is not None:
                check(args)
            if getattr(args, "needs_tensorflow", True) and not args.verbose:
                _import_tensorflow_quietly()
            return args.func(args)
    except ElmoError as err:
        print(f"keras-elmo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nkeras-elmo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
