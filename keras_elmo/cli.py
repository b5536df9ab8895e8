"""The `keras-elmo` command line. Thin: parsing here, work in the library.

keras-elmo embed INPUT.txt OUTPUT.hdf5 [--options-file O --weight-file W]
                 [--all|--top|--average] [--batch-size N] [--stateful]
keras-elmo export EXPORT_DIR [--options-file O --weight-file W | --keras-file F]
keras-elmo build-vocab ... / train ... / perplexity ...
"""

import argparse
import json
import os
import sys
import time

DEFAULT_MODEL_NAME = "elmo-small-en"


def default_model_dir():
    """The model shipped in the repository's `saved_models/` (or $KERAS_ELMO_MODEL_DIR)."""
    env = os.environ.get("KERAS_ELMO_MODEL_DIR")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "saved_models", DEFAULT_MODEL_NAME)


class CliError(Exception):
    """An error to report on stderr as one line, exit status 2."""


def _model_files(args):
    options_file, weight_file = args.options_file, args.weight_file
    if (options_file is None) != (weight_file is None):
        raise CliError(
            "give both --options-file and --weight-file, or neither (the shipped model)."
        )
    if options_file is None:
        model_dir = default_model_dir()
        options_file = os.path.join(model_dir, "options.json")
        weight_file = os.path.join(model_dir, "weights.hdf5")
        if not os.path.isfile(options_file):
            raise CliError(
                f"no shipped model at {model_dir}; pass --options-file and --weight-file."
            )
    return options_file, weight_file


def _add_model_args(parser):
    parser.add_argument("--options-file", help="options.json (default: the shipped model)")
    parser.add_argument("--weight-file", help="weights.hdf5 (default: the shipped model)")


def _build_parser():
    parser = argparse.ArgumentParser(prog="keras-elmo", description="ELMo vectors with Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed a file of sentences into an hdf5 file")
    embed.add_argument("input_file", help="one whitespace-tokenized sentence per line (UTF-8)")
    embed.add_argument("output_file", help="hdf5 file to write")
    _add_model_args(embed)
    which = embed.add_mutually_exclusive_group()
    which.add_argument(
        "--all",
        dest="layers",
        action="store_const",
        const="all",
        help="all layers, shape (n_layers + 1, T, 2P) (default)",
    )
    which.add_argument(
        "--top",
        dest="layers",
        action="store_const",
        const="top",
        help="the top LSTM layer, (T, 2P)",
    )
    which.add_argument(
        "--average",
        dest="layers",
        action="store_const",
        const="average",
        help="the average of all layers, (T, 2P)",
    )
    embed.set_defaults(layers="all")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument(
        "--stateful",
        action="store_true",
        help="carry LSTM state across batches of consecutive lines, like the original",
    )
    embed.add_argument("--quiet", action="store_true", help="no progress bar")

    export = sub.add_parser("export", help="write a SavedModel for TensorFlow Serving")
    export.add_argument("export_dir", help="base directory; the model goes to EXPORT_DIR/<version>")
    _add_model_args(export)
    export.add_argument(
        "--keras-file", help="a .keras file holding an ElmoLayer or a model with one"
    )
    export.add_argument("--version", type=int, default=None, help="default: next free integer")
    export.add_argument(
        "--tokenizer",
        default="whitespace",
        choices=("whitespace", "punctuation", "tf_text"),
        help="in-graph tokenizer for raw sentences (tf_text needs tensorflow-text ops)",
    )

    for name, fn_help in (
        ("build-vocab", "build an LM vocabulary from text files"),
        ("train", "train a biLM"),
        ("perplexity", "held-out perplexity of a biLM"),
    ):
        # Listed for --help only; main() hands these to their own parsers.
        sub.add_parser(name, help=fn_help + f" (see keras-elmo {name} --help)")
    return parser


# ------------------------------------------------- build-vocab, train, perplexity


def _expand(patterns):
    import glob

    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise ValueError(f"no file matches {pattern!r}.")
        files += matches
    return files


def _cli_build_vocab(argv):
    from keras_elmo.training import data as data_lib

    p = argparse.ArgumentParser(
        prog="keras-elmo build-vocab", description="Count tokens and write a biLM vocabulary file."
    )
    p.add_argument("output", help="vocabulary file to write")
    p.add_argument("files", nargs="*", help="tokenized text, one sentence per line")
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--max-size", type=int, default=None)
    p.add_argument(
        "--split-shared-data",
        metavar="DATA_DIR",
        help="first write the fixed train/held-out splits of shared/data "
        "(Brown, SOTU, Moby-Dick) to --split-dir and count the train split",
    )
    p.add_argument("--split-dir", help="where to write the splits")
    args = p.parse_args(argv)
    files = list(args.files)
    if args.split_shared_data:
        if not args.split_dir:
            raise ValueError("--split-shared-data needs --split-dir.")
        splits = data_lib.write_splits(args.split_shared_data, args.split_dir)
        for name, (paths, n_sent, n_tok) in splits.items():
            print(
                f"{name}: {n_sent} sentences, {n_tok} tokens -> {', '.join(paths[:2])}"
                f"{' ...' if len(paths) > 2 else ''}"
            )
        files += splits["train"][0]
    if not files:
        raise ValueError("give text files or --split-shared-data.")
    counts = data_lib.count_tokens(_expand(files))
    vocab = data_lib.build_vocab(counts, min_count=args.min_count, max_size=args.max_size)
    data_lib.write_vocab(vocab, args.output)
    covered = sum(counts[w] for w in vocab[3:])
    print(
        f"{len(vocab)} entries; covers {covered / max(sum(counts.values()), 1):.2%} "
        f"of {sum(counts.values())} tokens -> {args.output}"
    )
    return 0


def _options_from_args(args):
    from keras_elmo import options as options_lib

    if args.options:
        return options_lib.load_options(args.options)
    return options_lib.validate_options(
        {
            "lstm": {
                "dim": args.lstm_dim,
                "projection_dim": args.projection_dim,
                "n_layers": args.n_layers,
                "cell_clip": 3,
                "proj_clip": 3,
                "use_skip_connections": True,
            },
            "char_cnn": {
                "embedding": {"dim": args.char_dim},
                "n_characters": 262,
                "max_characters_per_token": 50,
                "activation": "relu",
                "filters": json.loads(args.filters),
                "n_highway": args.n_highway,
            },
        }
    )


def _cli_train(argv):
    import keras
    import numpy as np

    from keras_elmo.training import data as data_lib
    from keras_elmo.training import trainer as training

    p = argparse.ArgumentParser(prog="keras-elmo train", description="Train a biLM.")
    p.add_argument(
        "train_files", nargs="+", help="tokenized text files / globs, one sentence per line"
    )
    p.add_argument("--vocab", required=True, help="vocabulary file (build-vocab)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--checkpoint-dir", help="BackupAndRestore directory; rerun to resume")
    p.add_argument("--options", help="options.json; otherwise the size flags below")
    p.add_argument("--lstm-dim", type=int, default=1024)
    p.add_argument("--projection-dim", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--char-dim", type=int, default=16)
    p.add_argument("--filters", default="[[1,32],[2,32],[3,64],[4,128],[5,256]]")
    p.add_argument("--n-highway", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--steps-per-epoch", type=int, default=500, help="also the checkpoint interval")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time")
    p.add_argument("--n-negative", type=int, default=512)
    p.add_argument("--optimizer", default="adam", choices=("adam", "adagrad"))
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--clipnorm", type=float, default=5.0)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shuffle-buffer", type=int, default=10000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument(
        "--heldout-files",
        nargs="*",
        default=[],
        help="evaluate full-softmax perplexity on these after training",
    )
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    vocab = data_lib.load_vocab(args.vocab)
    options = _options_from_args(args)
    files = _expand(args.train_files)
    model = training.BiLMTrainer(
        options, len(vocab), n_negative=args.n_negative, dropout=args.dropout, seed=args.seed
    )
    model.compile(
        optimizer=training.make_optimizer(args.optimizer, args.learning_rate, args.clipnorm)
    )
    print(
        f"parameters: encoder {model.token_encoder.count_params()}, "
        f"bilm {model.bilm.count_params()}, softmax {model.softmax.count_params()}"
    )
    log = training.BatchLog(print_every=args.log_every, stream=sys.stdout)
    callbacks = [log]
    if args.max_minutes:
        callbacks.append(training.TimeLimit(args.max_minutes))
    start = time.time()
    training.train(
        model,
        files,
        vocab,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        epochs=args.epochs,
        checkpoint_dir=args.checkpoint_dir,
        max_len=args.max_len,
        shuffle_buffer=args.shuffle_buffer,
        data_seed=args.seed,
        callbacks=callbacks,
    )
    seconds = time.time() - start
    steps = int(model.optimizer.iterations.numpy())
    info = {
        "steps": steps,
        "batch_size": args.batch_size,
        "this_run_seconds": seconds,
        "this_run_target_tokens": log.tokens,
        "args": vars(args),
        "final_mean_loss_last_100": float(np.mean(log.losses[-100:])) if log.losses else None,
    }
    if args.heldout_files:
        info["heldout"] = {}
        for path in _expand(args.heldout_files):
            ds = data_lib.make_dataset(path, vocab, 16, max_len=args.max_len)
            info["heldout"][os.path.basename(path)] = training.perplexity(model, ds)
    training.export_model(model, args.output_dir, vocab=vocab, extra_log=info)
    print(json.dumps({k: v for k, v in info.items() if k != "args"}, indent=1))
    return 0


def _cli_perplexity(argv):
    from keras_elmo.training import data as data_lib
    from keras_elmo.training import trainer as training

    p = argparse.ArgumentParser(
        prog="keras-elmo perplexity", description="Held-out perplexity with the full softmax."
    )
    p.add_argument("files", nargs="+", help="tokenized text, one sentence per line")
    p.add_argument(
        "--model-dir",
        required=True,
        help="an output dir of `keras-elmo train` (options.json, weights.hdf5, "
        "softmax.npz, vocab.txt)",
    )
    p.add_argument("--vocab", help="default: MODEL_DIR/vocab.txt")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-len", type=int, default=50)
    args = p.parse_args(argv)
    vocab = data_lib.load_vocab(args.vocab or os.path.join(args.model_dir, "vocab.txt"))
    model = training.load_trained(args.model_dir)
    if model.vocab_size != len(vocab):
        raise ValueError(
            f"the softmax has {model.vocab_size} rows but the vocabulary has {len(vocab)} entries."
        )
    results = {}
    for path in _expand(args.files):
        ds = data_lib.make_dataset(path, vocab, args.batch_size, max_len=args.max_len)
        results[path] = training.perplexity(model, ds)
    print(json.dumps(results, indent=1))
    return 0


def _run_embed(args):
    from keras_elmo.serving import embed_file

    options_file, weight_file = _model_files(args)
    embed_file.embed_file(
        args.input_file,
        args.output_file,
        options_file,
        weight_file,
        layers=args.layers,
        batch_size=args.batch_size,
        stateful=args.stateful,
        progress=None if args.quiet else sys.stderr,
    )
    return 0


def _run_export(args):
    from keras_elmo.serving import export

    source = args.keras_file if args.keras_file else _model_files(args)
    path = export.export_from_files(
        source, args.export_dir, version=args.version, tokenizer=args.tokenizer
    )
    print(path)
    return 0


# These parse their own flags (argparse's REMAINDER would stop at "--x").
TRAINING_COMMANDS = {
    "build-vocab": _cli_build_vocab,
    "train": _cli_train,
    "perplexity": _cli_perplexity,
}


def main(argv=None):
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv and argv[0] in TRAINING_COMMANDS:
        command = argv[0]
        run = lambda: TRAINING_COMMANDS[command](argv[1:])  # noqa: E731
    else:
        args = _build_parser().parse_args(argv)
        command = args.command
        run = lambda: {"embed": _run_embed, "export": _run_export}[command](args)  # noqa: E731
    try:
        return run()
    except CliError as err:
        print(f"keras-elmo: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, UnicodeError) as err:
        print(f"keras-elmo {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
