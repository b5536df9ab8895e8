"""`keras-elmo spark-embed` (local Spark) against `keras-elmo embed` on one file.

    python benchmarks/bench_spark.py                      # 5,000 Brown sentences, local[2]
    python benchmarks/bench_spark.py --lines 1000 --repeats 1 --engines

The input is the first N Brown sentences (as benchmarks/bench_beam.py reads
them). Each run is a fresh subprocess, alternating embed / Spark so that a
change in the machine's load hits both. Timed: the library call the command
runs, model loading and writing included (embed: `embed_file` to Parquet;
Spark: `spark.embed_files`, which loads the model once in each of the
executor's Python workers, from the fresh session's first task); TensorFlow's
import and the Spark session's start excluded (a first job imports TensorFlow,
Keras and keras_elmo in each Spark Python worker before the clock, as embed
imports them before its clock; `--cold` times those imports too). `--engines` also times the
embedding alone (Spark's `noop` sink) through `mapInArrow` (what the library
uses) and through `mapInPandas` (Arrow -> pandas -> Arrow around the same
partition function). Prints markdown tables and writes them with the
machine's details to benchmarks/results/spark_<date>.json.
"""

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_beam import brown_lines, run_job, write_record  # noqa: E402  (the same input, the same record)

RUN = r"""
import functools, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
sys.path.insert(0, sys.argv[1])
import tensorflow  # noqa: F401  (imported before the clock starts, for both)
args = json.loads(sys.argv[2])
source = {"options_file": args["options"], "weight_file": args["weights"]}
if args["which"] == "embed":
    import keras_elmo.layers.elmo_layer  # noqa: F401  (as the Spark workers' warm-up)
    from keras_elmo.jobs import embed_file
    start = time.perf_counter()
    embed_file.embed_file(args["input"], os.path.join(args["out"], "out.parquet"),
                          layers=args["layers"], batch_size=args["batch_size"],
                          file_format="parquet", **source)
    seconds = time.perf_counter() - start
else:
    from pyspark.sql import SparkSession
    from keras_elmo.checkpoints.model_source import ModelSource
    from keras_elmo.integrations import spark
    session = (SparkSession.builder.master(args["master"]).config("spark.ui.enabled", "false")
               .config("spark.log.level", "ERROR").getOrCreate())
    # The JVM is up before the clock; unless --cold, so are the imports (TensorFlow,
    # Keras, keras_elmo) in each Python worker that will embed, as they are for embed
    # (imported above, before its clock). The model loads on the clock, once per worker.
    if not args["cold"]:
        import pyarrow as pa

        def warm(batches):
            import keras_elmo.layers.elmo_layer  # noqa: F401
            for _ in batches:
                pass
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()]})

        warm_df, _ = spark.read_input(session, args["input"], "text", args["partitions"])
        warm_df.mapInArrow(warm, "pid long").collect()
    else:
        session.range(1).collect()
    model = ModelSource(**source)
    options = dict(layers=args["layers"], batch_size=args["batch_size"],
                   max_batch_tokens=args["max_batch_tokens"], max_tokens=None)
    start = time.perf_counter()
    if args["which"] == "spark":
        spark.embed_files(session, args["input"], os.path.join(args["out"], "spark"), model,
                          partitions=args["partitions"], **options)
    else:  # the engine comparison: embedding only, into Spark's noop sink
        df, column = spark.read_input(session, args["input"], "text", args["partitions"])
        settings = spark.embed_settings(df.schema, column, "vectors", model, **options)
        schema = spark._output_schema(df.schema, settings)
        if args["which"] == "arrow":
            out = df.mapInArrow(functools.partial(spark.embed_partition, settings=settings),
                                schema)
        else:
            import pyarrow as pa

            def pandas_partition(frames, settings):
                batches = (pa.RecordBatch.from_pandas(f, preserve_index=False) for f in frames)
                for batch in spark.embed_partition(batches, settings):
                    yield batch.to_pandas()

            out = df.mapInPandas(functools.partial(pandas_partition, settings=settings), schema)
        out.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - start
    session.stop()
print(json.dumps({"seconds": seconds}))
"""


def run_one(job):
    return run_job(RUN, job, job["which"])


def table(results, lines, tokens, args, label):
    rows, median = [], {}
    for which, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        median[which] = seconds
        rows.append(
            f"| {label(which)} | {lines} | {tokens} | {args.layers} | {len(runs)} | "
            f"{seconds:.1f} | {tokens / seconds:.0f} |"
        )
    head = [
        "| run | lines | tokens | layers | runs | seconds (median) | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows), median


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-batch-tokens", type=int, default=4096)
    parser.add_argument("--layers", default="top", choices=("all", "top", "average"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs")
    parser.add_argument("--engines", action="store_true", help="also mapInArrow vs mapInPandas")
    parser.add_argument(
        "--cold", action="store_true", help="time TensorFlow's import in the Spark workers too"
    )
    model_dir = os.path.join(REPO, "saved_models", "elmo-small-en")
    parser.add_argument("--options-file", default=os.path.join(model_dir, "options.json"))
    parser.add_argument("--weight-file", default=os.path.join(model_dir, "weights.hdf5"))
    args = parser.parse_args()

    lines = brown_lines(args.lines)
    tokens = sum(len(line.split()) for line in lines)
    results = {"embed": [], "spark": []}
    engines = {"arrow": [], "pandas": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "brown.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        job = {
            "input": src,
            "options": args.options_file,
            "weights": args.weight_file,
            "layers": args.layers,
            "batch_size": args.batch_size,
            "max_batch_tokens": args.max_batch_tokens,
            "master": args.master,
            "partitions": args.partitions,
            "cold": args.cold,
        }
        order = list(results) + (list(engines) if args.engines else [])
        for repeat in range(args.repeats):
            for which in order:
                result = run_one({**job, "which": which, "out": tempfile.mkdtemp(dir=tmp)})
                (results if which in results else engines)[which].append(result)
                print(f"repeat {repeat} {which}: {result['seconds']:.1f} s", file=sys.stderr)

    names = {
        "embed": "keras-elmo embed (Parquet)",
        "spark": f"spark-embed {args.master}, {args.partitions} partitions",
        "arrow": "mapInArrow, noop sink",
        "pandas": "mapInPandas, noop sink",
    }
    main_table, median = table(results, args.lines, tokens, args, names.get)
    ratio = median["embed"] / median["spark"]
    print(main_table)
    print(f"\nspark-embed tokens/s / embed tokens/s: {ratio:.2f}")
    extra = {}
    if args.engines:
        engine_table, engine_median = table(engines, args.lines, tokens, args, names.get)
        print("\n" + engine_table)
        extra.update(engines=engines, engine_table=engine_table)
        extra["pandas_over_arrow_seconds"] = engine_median["pandas"] / engine_median["arrow"]
    write_record("spark", args, results, ratio, main_table, **extra)


if __name__ == "__main__":
    main()
