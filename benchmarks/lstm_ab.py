"""A/B of biLM settings in one process: passes alternate between the variants.

    python benchmarks/lstm_ab.py                                   # float32 vs bfloat16, full size
    python benchmarks/lstm_ab.py --model small
    python benchmarks/lstm_ab.py --variants float32:chunk=all,float32 --output ...

A variant is `dtype[:key=value...]`: dtype is ElmoLayer's matmul_dtype;
`layout=feature|batch` forces the LSTM weight layout (default: chosen by
size, lstm.FEATURE_MAJOR_MIN_RECURRENT); `chunk=N|all` sets
lstm.CHUNK_ROWS (`all`: the whole input side at once, the code before
chunking). Every variant is a layer loaded from the same original-format
files (random weights, seeded, written once by the project's writer), called
through a `tf.function` with a dynamic (batch, time) signature on the same
seeded Brown sentences (batch_to_ids -> call -> numpy, as bench_elmo.py).
After one warm-up pass each, the variants run one pass each in turn, for
--rounds rounds, so that a busy or throttled machine affects all of them
alike; tokens/s is the median over rounds.

Beside them, the matmul rates (GFLOP/s) of the biLM's own shapes in float32
and bfloat16, three operand layouts (x @ W, W^T @ x^T, x @ (W^T)^T), measured before and after the rounds
(their mean): the input side (a 1024-position chunk) and one recurrent step
(n rows), so that a variant's speed-up can be read against what the
matmuls alone allow on this CPU.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from bench_elmo import add_workload_args, hardware, make_sentences  # noqa: E402

STEP_ROWS = (1, 8, 19, 32)
DTYPES = ("float32", "bfloat16")
LAYOUTS = (
    "batch-major",
    "feature-major",
    "batch-major on W^T",
)  # 19: the mean real rows per step of batch 32 of Brown 10-40


def parse_variant(spec):
    dtype, *settings = spec.split(":")
    variant = {"name": spec, "dtype": dtype, "layout": None, "chunk": None}
    for item in settings:
        key, _, value = item.partition("=")
        if key == "layout" and value in ("feature", "batch"):
            variant["layout"] = value
        elif key == "chunk" and (value == "all" or value.isdigit()):
            variant["chunk"] = 2**31 - 1 if value == "all" else int(value)
        else:
            raise SystemExit(f"bad variant setting {item!r} in {spec!r}")
    return variant


def matmul_rates(tf, units, proj):
    """GFLOP/s of the biLM matmul shapes, per dtype and operand layout.

    The matmuls repeat inside one graph (a while loop carrying one element of
    each product, so that none is skipped): the rate of the kernel itself, not
    of Python dispatching one small op at a time."""
    rates = {}
    gates = 4 * units
    for dtype in DTYPES:
        w = tf.cast(tf.random.normal([proj, gates], seed=1), dtype)
        w_t = tf.transpose(w)
        for rows in (1024,) + STEP_ROWS:
            x = tf.cast(tf.random.normal([rows, proj], seed=2), dtype)
            n = max(5, int(1e9 / (2 * rows * proj * gates)))  # ~1 GFLOP per try
            for layout, product in (
                ("batch-major", lambda x, w=w: tf.matmul(x, w)),  # x @ W -> (n, 4D)
                ("feature-major", lambda x, w=w_t: tf.matmul(w, x, transpose_b=True)),
                # x @ (W^T)^T: the lower-precision path's step on W^T stored
                ("batch-major on W^T", lambda x, w=w_t: tf.matmul(x, w, transpose_b=True)),
            ):

                def body(i, x, acc, product=product):
                    # one element of the product is carried, so it must run
                    return i + 1, x, acc + tf.cast(product(x)[0, 0], tf.float32)

                loop = tf.function(
                    lambda x, body=body, n=n: tf.while_loop(
                        lambda i, *_: i < n, body, (tf.constant(0), x, tf.constant(0.0))
                    )[2]
                )
                loop(x).numpy()
                best = 0.0
                for _ in range(3):
                    t = time.perf_counter()
                    loop(x).numpy()
                    best = max(best, n * 2 * rows * proj * gates / (time.perf_counter() - t) / 1e9)
                rates[(dtype, layout, rows)] = best
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser)
    parser.add_argument("--variants", default="float32,bfloat16")
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--long", type=int, default=0, help="instead: one sentence of this many tokens (batch 1)"
    )
    parser.add_argument(
        "--output", default=None, help="markdown file (default results/lstm_ab_<model>.md)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import keras_elmo
    from keras_elmo.layers import lstm as lstm_lib

    variants = [parse_variant(v) for v in args.variants.split(",")]
    tmp = tempfile.mkdtemp(prefix="keras_elmo_ab_")
    paths = (os.path.join(tmp, "options.json"), os.path.join(tmp, "weights.hdf5"))
    keras.utils.set_random_seed(args.seed)
    keras_elmo.ElmoLayer(keras_elmo.published_options(args.model)).save_original(*paths)
    sents, source = make_sentences(args.sentences, args.seed, args.data)
    if args.long:  # one long sentence of Brown words
        words = [w for s in sents for w in s]
        sents, source = [(words * (args.long // len(words) + 1))[: args.long]], "words of " + source
        args.sentences, args.batch_size = 1, 1
    batches = [sents[i : i + args.batch_size] for i in range(0, len(sents), args.batch_size)]
    n_tokens = sum(len(s) for s in sents)

    default_min, default_chunk = lstm_lib.FEATURE_MAJOR_MIN_RECURRENT, lstm_lib.CHUNK_ROWS
    for v in variants:
        if v["layout"]:
            lstm_lib.FEATURE_MAJOR_MIN_RECURRENT = 0 if v["layout"] == "feature" else 2**62
        layer = keras_elmo.ElmoLayer.from_original(*paths, matmul_dtype=v["dtype"])
        lstm_lib.FEATURE_MAJOR_MIN_RECURRENT = default_min
        v["feature_major"] = [lstm.feature_major for lstm in layer.bilm.lstms]
        v["call"] = tf.function(
            layer.__call__,
            input_signature=[tf.TensorSpec([None, None, layer.max_chars], tf.int32)],
        )
        ids = [tf.constant(keras_elmo.batch_to_ids(b, layer.max_chars)) for b in batches]
        v["ids"] = ids
        # CHUNK_ROWS is read while the call is traced: trace under the setting.
        lstm_lib.CHUNK_ROWS = v["chunk"] or default_chunk
        v["call"](ids[0]).numpy()
        lstm_lib.CHUNK_ROWS = default_chunk
        v["times"] = []

    def one_pass(v):
        t = time.perf_counter()
        for ids in v["ids"]:
            v["call"](ids).numpy()
        return time.perf_counter() - t

    units = keras_elmo.published_options(args.model)["lstm"]["dim"]
    proj = keras_elmo.published_options(args.model)["lstm"]["projection_dim"]
    before = matmul_rates(tf, units, proj)
    for v in variants:
        one_pass(v)  # warm-up
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            v["times"].append(one_pass(v))
        print(
            f"# round {r + 1}: "
            + ", ".join(f"{v['name']} {n_tokens / v['times'][-1]:.0f}" for v in variants),
            file=sys.stderr,
            flush=True,
        )
    after = matmul_rates(tf, units, proj)
    rates = {k: (before[k] + after[k]) / 2 for k in before}

    base = statistics.median(n_tokens / t for t in variants[0]["times"])
    command = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"### lstm_ab: {args.model}, batch {args.batch_size}"
        + (f", one sentence of {args.long} tokens" if args.long else ""),
        "",
        f"- hardware: {hardware()}",
        f"- TensorFlow {tf.__version__}, Keras {keras.__version__}; threads: TF default",
        f"- text: {args.sentences} {source} ({n_tokens} tokens); random weights, seed {args.seed}",
        f"- {args.rounds} rounds after one warm-up pass each, variants alternating (order "
        "reversed every other round); tokens/s: median over rounds",
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/lstm_ab.py {command}`".rstrip(),
        "",
        "| variant | LSTM layout (per layer) | tokens/s (median) | min - max | vs first |",
        "|---|---|---:|---:|---:|",
    ]
    for v in variants:
        tps = [n_tokens / t for t in v["times"]]
        layout = ", ".join("feature-major" if f else "batch-major" for f in v["feature_major"])
        lines.append(
            f"| {v['name']} | {layout} | {statistics.median(tps):.0f} | "
            f"{min(tps):.0f} - {max(tps):.0f} | {statistics.median(tps) / base:.2f}x |"
        )
    lines += [
        "",
        f"Matmul rates of the biLM's shapes (GFLOP/s, 4D = {4 * units}, P = {proj}; mean of "
        "before and after the rounds): input side = 1024 positions, step = n rows",
        "",
        "| shape | "
        + " | ".join(f"{d} {lay}" for d in DTYPES for lay in LAYOUTS)
        + " | best bf16 / best f32 |",
        "|---|" + "---:|" * (2 * len(LAYOUTS) + 1),
    ]
    for rows in (1024,) + STEP_ROWS:
        cells = [rates[(d, lay, rows)] for d in DTYPES for lay in LAYOUTS]
        label = "input side (1024)" if rows == 1024 else f"step, n = {rows}"
        lines.append(
            f"| {label} | "
            + " | ".join(f"{c:.0f}" for c in cells)
            + f" | {max(cells[len(LAYOUTS) :]) / max(cells[: len(LAYOUTS)]):.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    name = f"lstm_ab_{args.model}" + (f"_long{args.long}" if args.long else "")
    output = args.output or os.path.join(HERE, "results", name + ".md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(
            {
                "hardware": hardware(),
                "variants": [
                    {
                        k: v[k]
                        for k in ("name", "dtype", "layout", "chunk", "feature_major", "times")
                    }
                    | {"tokens": n_tokens}
                    for v in variants
                ],
                "matmul_gflops": {f"{d}/{lay}/{n}": x for (d, lay, n), x in rates.items()},
            },
            f,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
