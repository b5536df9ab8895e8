"""Where the time of one ElmoLayer call goes, by TensorFlow op type (tf.profiler).

    python benchmarks/profile_ops.py --matmul-dtype bfloat16 [--model original] [--batches 2]

Builds the published size with random weights (seeded), traces the call
(`tf.function`, dynamic (batch, time) signature), runs it once to warm up,
then records --batches batches of 32 seeded Brown sentences with
`tf.profiler.experimental` and sums the host time of every op event by op
type (MatMul, _MklMatMul, Cast, GatherNd, ...), reported as ms per batch and
as a share of all op time. The trace itself is left in --logdir for
TensorBoard's profile plugin.
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_elmo import add_workload_args, hardware, make_sentences  # noqa: E402

from keras_elmo.options import MATMUL_DTYPES  # noqa: E402

# Ops whose events span the ops of the functions they run (counted there).
CONTAINERS = {
    "While",
    "StatelessWhile",
    "If",
    "StatelessIf",
    "PartitionedCall",
    "StatefulPartitionedCall",
}


def op_times(logdir):
    """{op type: total µs} over the host op events of the newest trace in logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping, not an op
                    continue
                op_type = name.rsplit(":", 1)[-1]
                if op_type in CONTAINERS:
                    continue
                totals[op_type] += event.duration_ps / 1e6
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser)
    parser.add_argument("--matmul-dtype", default="float32", choices=MATMUL_DTYPES)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--logdir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import keras_elmo

    keras.utils.set_random_seed(args.seed)
    layer = keras_elmo.ElmoLayer(
        keras_elmo.published_options(args.model), matmul_dtype=args.matmul_dtype
    )
    call = tf.function(
        layer.__call__, input_signature=[tf.TensorSpec([None, None, layer.max_chars], tf.int32)]
    )
    sents, source = make_sentences(args.batches * args.batch_size, args.seed, args.data)
    ids = [
        tf.constant(keras_elmo.batch_to_ids(sents[i : i + args.batch_size], layer.max_chars))
        for i in range(0, len(sents), args.batch_size)
    ]
    call(ids[0]).numpy()
    logdir = args.logdir or tempfile.mkdtemp(prefix="keras_elmo_profile_")
    tf.profiler.experimental.start(logdir)
    for x in ids:
        call(x).numpy()
    tf.profiler.experimental.stop()
    totals = op_times(logdir)
    total = sum(totals.values())
    print(
        f"# {hardware()}; {args.model}, matmul_dtype={args.matmul_dtype}, "
        f"{len(ids)} batches of {args.batch_size} ({source}); trace in {logdir}"
    )
    print(f"# all ops: {total / 1e3 / len(ids):.0f} ms per batch")
    print("| op type | ms per batch | share |")
    print("|---|---:|---:|")
    for op, us in totals.most_common(args.top):
        print(f"| {op} | {us / 1e3 / len(ids):.1f} | {100 * us / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
