"""The exported SavedModel's `default` signature at the batch sizes TF Serving would batch to.

    python benchmarks/bench_serving_batch.py                  # shipped elmo-small-en
    python benchmarks/bench_serving_batch.py --batch-sizes 1,8,32 --repeats 3

Exports the model (`export_saved_model`, no request limits, so that the
batch sizes are free), loads it with `tf.saved_model.load` (what TF Serving
runs) and times the `default` signature (raw sentences in) on Brown
sentences of 10-40 tokens ($KERAS_ELMO_DATA or ../shared/data) at each
batch size: milliseconds per batch (median of repeats after one warm-up)
and sentences/s. These figures set `batching_parameters.txt`
(keras_elmo/serving/export.py, docs/scaling-out.md). Prints a markdown
table and writes it to benchmarks/results/serving_batch.md.
"""

import argparse
import datetime
import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "examples"))  # corpora


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="1,4,8,16,32,64,128")
    parser.add_argument("--repeats", type=int, default=5)
    model_dir = os.path.join(REPO, "saved_models", "elmo-small-en")
    parser.add_argument("--options-file", default=os.path.join(model_dir, "options.json"))
    parser.add_argument("--weight-file", default=os.path.join(model_dir, "weights.hdf5"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import corpora
    import tensorflow as tf
    from bench_beam import cpu_model

    from keras_elmo.layers.elmo_layer import ElmoLayer
    from keras_elmo.serving import export

    root = corpora.data_root()
    train, held_out = corpora.brown_files(os.path.join(root, "brown"))
    sentences = []
    for path in sorted(train + held_out)[:40]:
        sentences += [" ".join(s) for s in corpora.read_brown(path) if 10 <= len(s) <= 40]
    rng = random.Random(0)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    layer = ElmoLayer.from_original(args.options_file, args.weight_file)
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_saved_model(
            layer,
            tmp,
            max_batch_size=None,
            max_tokens_per_sentence=None,
            max_tokens_per_request=None,
        )
        serve = tf.saved_model.load(path).signatures["serving_default"]
        rows = []
        for size in sizes:
            batch = tf.constant(rng.sample(sentences, size))
            tokens = int(tf.size(tf.strings.split(batch).flat_values))
            serve(default=batch)  # warm-up (tracing happened at export)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                serve(default=batch)["elmo"].numpy()
                times.append(time.perf_counter() - start)
            ms = 1000 * statistics.median(times)
            rows.append(
                f"| {size} | {tokens / size:.1f} | {ms:.0f} | {size / ms * 1000:.1f} | "
                f"{tokens / ms * 1000:.0f} |"
            )
            print(rows[-1], file=sys.stderr)
    table = "\n".join(
        [
            "### Exported `default` signature by batch size",
            "",
            f"- hardware: {cpu_model()}; load average at the end {os.getloadavg()[0]:.1f}",
            f"- model: {os.path.relpath(args.options_file, REPO)}; TensorFlow {tf.__version__}",
            f"- date: {datetime.date.today().isoformat()}; command: `python "
            f"benchmarks/bench_serving_batch.py --batch-sizes {args.batch_sizes} "
            f"--repeats {args.repeats}`",
            "",
            "| batch | tokens/sentence | ms per batch | sentences/s | tokens/s |",
            "|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(table)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "serving_batch.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
