"""The `keras-elmo` command line. Thin: parsing here, work in the library.

    keras-elmo embed INPUT.txt OUTPUT.hdf5 [--options-file O --weight-file W]
                     [--all|--top|--average] [--batch-size N] [--stateful]
    keras-elmo export EXPORT_DIR [--options-file O --weight-file W | --keras-file F]
    keras-elmo build-vocab ... / train ... / perplexity ...
"""

import argparse
import os
import sys

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
        raise CliError("give both --options-file and --weight-file, or neither (the shipped model).")
    if options_file is None:
        model_dir = default_model_dir()
        options_file = os.path.join(model_dir, "options.json")
        weight_file = os.path.join(model_dir, "weights.hdf5")
        if not os.path.isfile(options_file):
            raise CliError(f"no shipped model at {model_dir}; pass --options-file and --weight-file.")
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
    which.add_argument("--all", dest="layers", action="store_const", const="all",
                       help="all layers, shape (n_layers + 1, T, 2P) (default)")
    which.add_argument("--top", dest="layers", action="store_const", const="top",
                       help="the top LSTM layer, (T, 2P)")
    which.add_argument("--average", dest="layers", action="store_const", const="average",
                       help="the average of all layers, (T, 2P)")
    embed.set_defaults(layers="all")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--stateful", action="store_true",
                       help="carry LSTM state across batches of consecutive lines, like the original")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")

    export = sub.add_parser("export", help="write a SavedModel for TensorFlow Serving")
    export.add_argument("export_dir", help="base directory; the model goes to EXPORT_DIR/<version>")
    _add_model_args(export)
    export.add_argument("--keras-file", help="a .keras file holding an ElmoLayer or a model with one")
    export.add_argument("--version", type=int, default=None, help="default: next free integer")
    export.add_argument("--tokenizer", default="whitespace",
                        choices=("whitespace", "punctuation", "tf_text"),
                        help="in-graph tokenizer for raw sentences (tf_text needs tensorflow-text ops)")

    for name, fn_help in (("build-vocab", "build an LM vocabulary from text files"),
                          ("train", "train a biLM"),
                          ("perplexity", "held-out perplexity of a biLM")):
        p = sub.add_parser(name, help=fn_help, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv=None):
    """Entry point; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "embed":
            from keras_elmo import embed_file

            options_file, weight_file = _model_files(args)
            embed_file.embed_file(
                args.input_file, args.output_file, options_file, weight_file,
                layers=args.layers, batch_size=args.batch_size, stateful=args.stateful,
                progress=None if args.quiet else sys.stderr)
            return 0
        if args.command == "export":
            from keras_elmo import export

            if args.keras_file:
                source = args.keras_file
            else:
                source = _model_files(args)
            path = export.export_from_files(source, args.export_dir, version=args.version,
                                            tokenizer=args.tokenizer)
            print(path)
            return 0
        from keras_elmo import training

        return training.cli(args.command, args.rest)
    except CliError as err:
        print(f"keras-elmo: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, UnicodeError) as err:
        print(f"keras-elmo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
