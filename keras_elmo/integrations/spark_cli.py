"""The driver side of `keras-elmo spark-embed`, importable without pyspark.

The command line reads its choices from here (its `--help` must not start
a JVM or import pyspark); `run(args)` starts the Spark session and calls
`keras_elmo.integrations.spark.embed_files`.
"""

import os
import re
import sys

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.jobs import output
from keras_elmo.limits import SERVING_DEFAULTS

# The choices and defaults of keras_elmo.integrations.spark, for the command line.
HANDLE_INVALID, HUB_CHOICES = output.SPARK_HANDLE_INVALID, output.SPARK_HUB_OUTPUTS
DEFAULT_MAX_TOKENS = SERVING_DEFAULTS["max_tokens_per_sentence"]
# An ElmoError raised on an executor, as the driver's exception text shows it.
_EXECUTOR_ERROR = re.compile(r"keras_elmo\.errors\.(?:InputError|MissingFileError): (.+)")


def parse_conf(items):
    """--conf KEY=VALUE items -> {key: value}."""
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--conf takes KEY=VALUE, got {item!r}.")
        conf[key.strip()] = value
    return conf


def check_paths(input_path, output_dir):
    """The input exists; the output is new, empty or an unfinished run (cheap, no JVM)."""
    if not any(c in input_path for c in "*?[") and not os.path.exists(input_path):
        raise MissingFileError(f"input not found: {input_path}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InputError(f"output {output_dir} exists and is not a directory.")
    parent = os.path.dirname(os.path.abspath(output_dir))
    if not os.path.isdir(parent):
        raise InputError(f"output {output_dir}: the folder {parent} does not exist.")


def executor_error(err):
    """The one-line `ElmoError` message inside a Spark job failure, or None."""
    found = _EXECUTOR_ERROR.findall(str(err))
    return found[-1].strip() if found else None


def run(args):
    """Start Spark (`--master`, `--conf`) and embed args.input into args.output."""
    # Local mode's workers are this Python (with keras_elmo); a cluster sets its own.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not args.verbose:
        # The local workers' TensorFlow start-up lines (they inherit the environment).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "spark-embed needs pyspark: pip install -e '.[spark]' in the keras_elmo checkout."
        ) from None
    from keras_elmo.integrations import spark

    builder = SparkSession.builder.appName("keras-elmo spark-embed")
    if args.master:
        builder = builder.master(args.master)
    conf = {"spark.ui.showConsoleProgress": "false", **args.spark_conf}
    if not args.verbose:
        conf.setdefault("spark.log.level", "OFF")
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    options = {
        "layers": args.tf_hub_output or args.layers,
        "tokenizer": args.tokenizer,
        "sentence_col": "sentence" if args.sentence_vector else None,
        "batch_size": args.batch_size,
        "max_batch_tokens": args.batch_tokens,
        "max_tokens": args.max_tokens,
        "matmul_dtype": args.matmul_dtype,
        "handle_invalid": args.handle_invalid,
    }
    try:
        return spark.embed_files(
            session,
            args.input,
            args.output,
            args.source,
            column=args.column,
            partitions=args.partitions,
            **options,
        )
    except InputError:
        raise
    except Exception as err:  # a failed Spark job: its executor's ElmoError, if that was it
        message = executor_error(err)
        if message is None:
            raise
        raise InputError(message) from None
    finally:
        session.stop()
