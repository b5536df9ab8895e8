"""Would bfloat16 weights held once (not cast per call) make the bfloat16 path faster?

    python benchmarks/precast_weights_ab.py [--model small] [--sentences 512] [--rounds 7]

The lower-precision path casts every weight matrix to bfloat16 once per
call (the float32 variables stay the saved and trained ones). This
experiment measures what that cast costs: three layers with the same
weights, called alternately through `tf.function` on the same seeded Brown
batches (batch_to_ids -> call -> numpy): float32, bfloat16 as shipped, and
bfloat16 whose matrices are cast once beforehand and read as constants (the
LSTM's `run_packed` and the token encoder's `_low` are redirected to the
pre-cast copies; an experiment, not a supported mode). The outputs of the
last two must be bitwise equal.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _results import write_table  # noqa: E402
from bench_elmo import add_workload_args, hardware, make_sentences  # noqa: E402


def precast(layer, tf):
    """Redirect `layer`'s matrices to bfloat16 copies made now (eagerly, once)."""
    from keras_elmo.layers import lstm as lstm_lib

    copies = {
        id(v): tf.cast(tf.convert_to_tensor(v), tf.bfloat16)
        for v in layer.weights
        if len(v.shape) >= 2
    }
    encoder, low = layer.token_encoder, layer.token_encoder._low
    encoder._low = lambda t: copies.get(id(t)) if id(t) in copies else low(t)
    for lstm in layer.bilm.lstms:

        def call(inputs, mask, initial_state, lstm=lstm):
            c0, h0 = initial_state
            out, c, h = lstm_lib.run_packed(
                inputs,
                tf.cast(mask, tf.bool),
                copies[id(lstm.kernel)],
                tf.convert_to_tensor(lstm.bias),
                copies[id(lstm.recurrent_kernel)],
                copies[id(lstm.projection)],
                c0,
                h0,
                lstm.cell_clip,
                lstm.proj_clip,
                lstm.n_directions,
                "bfloat16",
                lstm.feature_major,
            )
            return out, (c, h)

        lstm.call = call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, model="small")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", help="default results/precast_weights_ab_<model>.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_elmo

    keras.utils.set_random_seed(args.seed)
    options = keras_elmo.published_options(args.model)
    layers = {
        "float32": keras_elmo.ElmoLayer(options),
        "bfloat16": keras_elmo.ElmoLayer(options, matmul_dtype="bfloat16"),
        "bfloat16, weights pre-cast": keras_elmo.ElmoLayer(options, matmul_dtype="bfloat16"),
    }
    for layer in layers.values():
        layer.build()
    weights = layers["float32"].get_weights()
    for layer in list(layers.values())[1:]:
        layer.set_weights(weights)
    precast(layers["bfloat16, weights pre-cast"], tf)

    sents, source = make_sentences(args.sentences, args.seed, args.data)
    b = args.batch_size
    spec = tf.TensorSpec([None, None, 50], tf.int32)
    batches = [
        tf.constant(keras_elmo.batch_to_ids(sents[i : i + b], 50)) for i in range(0, len(sents), b)
    ]
    calls = {
        name: tf.function(layer.__call__, input_signature=[spec]) for name, layer in layers.items()
    }
    first = {name: call(batches[0]).numpy() for name, call in calls.items()}
    same = np.array_equal(first["bfloat16"], first["bfloat16, weights pre-cast"])
    times = {name: [] for name in calls}
    for r in range(args.rounds):
        for name, call in calls.items() if r % 2 == 0 else list(calls.items())[::-1]:
            start = time.perf_counter()
            for x in batches:
                call(x).numpy()
            times[name].append(time.perf_counter() - start)
    tokens = sum(len(s) for s in sents)
    base = statistics.median(times["float32"])
    lines = [
        f"### precast_weights_ab: {args.model}, batch {b}",
        "",
        f"- hardware: {hardware()}",
        f"- text: {args.sentences} {source} ({tokens} tokens); random weights, seed {args.seed}",
        f"- {args.rounds} rounds, variants alternating; bfloat16 outputs with and without the "
        f"pre-cast weights bitwise equal: {same}",
        f"- date: {datetime.date.today().isoformat()}; command: `python "
        f"benchmarks/precast_weights_ab.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "| variant | tokens/s (median) | vs float32 |",
        "|---|---:|---:|",
    ]
    for name, ts in times.items():
        lines.append(
            f"| {name} | {tokens / statistics.median(ts):.0f} | {base / statistics.median(ts):.2f}x |"
        )
    default = os.path.join(HERE, "results", f"precast_weights_ab_{args.model}.md")
    write_table(lines, args.output or default)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
