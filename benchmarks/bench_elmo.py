"""Throughput, latency and memory of ElmoLayer for the published sizes.

    python benchmarks/bench_elmo.py                       # small, medium, original; batch 1, 32, 128
    python benchmarks/bench_elmo.py --models original --batch-sizes 32 --repeats 5

For each published size the script builds a model with random weights,
WRITES it in the original hdf5 format with the project's own writer
(`ElmoLayer.save_original`) and then measures a model loaded back from those
files (`ElmoLayer.from_original`), so the benchmark runs the same path as a
user with the published files. Every (model, batch size) runs in a fresh
subprocess so that peak memory figures do not mix.

Sentences: a fixed, seeded sample of 10-40 token sentences from the Brown
corpus when it is found (--data, or $KERAS_ELMO_DATA/brown), else seeded
English-like sentences: words drawn Zipf-like from a word list generated
here. Timed: token lists -> `batch_to_ids` -> layer call (a `tf.function`
with a dynamic (batch, time) signature) -> numpy, i.e. what a user pays.
tokens/s is the median over repeats (each repeat runs all the sentences)
after one warm-up pass.

FLOPs per token (multiply-add = 2 FLOPs; the model's nominal arithmetic,
the same for any implementation; elementwise ops not counted):

    char CNN   2 * d_char * sum_filters(width * count * (max_chars - width + 1))
    highway    n_highway * 2 * (2 * F * F)              F = sum of filter counts
    projection 2 * F * P                                 (only when F != P)
    biLM       n_layers * 2 directions * (2*P*4D + 2*P*4D + 2*D*P)
               (input-side gates + recurrent gates + output projection)

Published "original" (4096/512, 2 highway): 17.6 + 33.6 + 2.1 + 150.99 MFLOP
= 204 MFLOP/token. This nominal count is what the GFLOP/s column uses; this
implementation actually does less for the char CNN (it encodes each distinct
token of a batch once and skips pure-padding conv windows) and more in the
biLM (the <S> and </S> positions of every sentence).

"model GFLOP/s" is tokens/s times that nominal count: the work rate an
implementation without these savings would need, comparable across
implementations (and above the matmul rate where the savings are large, as
for the small model whose cost is mostly the char CNN). "executed GFLOP/s"
counts what this implementation runs: the char CNN, highway and projection
once per distinct token of a batch (an upper bound: padding-only conv
windows are skipped too) and the biLM on every token plus the two boundary
positions of each sentence. "% of matmul" compares the executed rate with a
2048x2048 float32 tf.matmul measured in the same subprocess just before and
after the model (their mean), which makes figures from a shared or busy
machine comparable.
"""

import argparse
import datetime
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time

from _results import run_worker, write_table

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("small", "medium", "original")
LATENCY_TOKENS = 20


# --------------------------------------------------------------------- text
def _synthetic_words(rng, n=5000):
    onsets = [
        "",
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "w",
        "th",
        "st",
        "ch",
        "sh",
        "pr",
        "tr",
        "br",
        "gr",
    ]
    vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "ie"]
    codas = ["", "n", "r", "s", "t", "d", "l", "ng", "st", "nd", "ck", "m"]
    words = ["the", "of", "and", "to", "a", "in", "is", "that", "it", "was", ",", "."]
    seen = set(words)
    while len(words) < n:
        w = "".join(
            rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
            for _ in range(rng.choice((1, 1, 2, 2, 3, 4)))
        )
        if w not in seen:
            seen.add(w)
            words.append(w.capitalize() if rng.random() < 0.05 else w)
    return words


def add_workload_args(parser, model="original", batch_size=32):
    """The flags of a one-model benchmark: --model, --batch-size, --seed, --data."""
    parser.add_argument("--model", default=model, help="a published size (small, medium, original)")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seed", type=int, default=0, help="weights and sentence sample")
    parser.add_argument("--data", default=None, help="Brown corpus folder (make_sentences)")


def make_sentences(n, seed=0, data_dir=None, replace=False):
    """n seeded sentences (token lists) of 10-40 tokens, and where they came from.

    replace=True draws with replacement (for more sentences than the corpus has)."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
    import corpora

    rng = random.Random(seed)
    if data_dir is None:
        data_dir = corpora.data_root(must_exist=False) / "brown"
    data_dir = os.path.normpath(data_dir)
    if os.path.isdir(data_dir):
        # All 500 files (the training and held-out parts), as corpora reads them.
        files = sorted(path for part in corpora.brown_files(data_dir) for path in part)
        pool = [s for path in files for s in corpora.read_brown(path) if 10 <= len(s) <= 40]
        source = f"Brown corpus sentences of 10-40 tokens ({data_dir}), seed {seed}"
        if replace and pool:
            return rng.choices(pool, k=n), source + ", drawn with replacement"
        if len(pool) >= n:
            return rng.sample(pool, n), source
    words = _synthetic_words(rng)
    weights = [1.0 / (k + 2.7) for k in range(len(words))]  # Zipf-like
    sents = [rng.choices(words, weights, k=rng.randint(10, 40)) for _ in range(n)]
    return (
        sents,
        f"synthetic English-like sentences of 10-40 tokens (Zipf over a generated word list), seed {seed}",
    )


# --------------------------------------------------------------------- FLOPs
def flops_per_token(options):
    cnn, lstm = options["char_cnn"], options["lstm"]
    d_char, c = cnn["embedding"]["dim"], cnn["max_characters_per_token"]
    conv = 2 * d_char * sum(w * n * (c - w + 1) for w, n in cnn["filters"])
    f = sum(n for _, n in cnn["filters"])
    p, d = lstm["projection_dim"], lstm["dim"]
    highway = cnn["n_highway"] * 2 * 2 * f * f
    proj = 2 * f * p if f != p else 0
    bilm = lstm["n_layers"] * 2 * (2 * p * 4 * d + 2 * p * 4 * d + 2 * d * p)
    return {
        "char_cnn": conv,
        "highway": highway,
        "projection": proj,
        "bilm": bilm,
        "total": conv + highway + proj + bilm,
    }


# --------------------------------------------------------------------- hardware
def cpu_flags():
    """The CPU features that decide the matmul speed of each dtype, from /proc/cpuinfo
    ({} where it cannot be read, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    break
            else:
                return {}
    except OSError:
        return {}
    return {
        "avx2": "avx2" in have,
        "avx512f": "avx512f" in have,
        "avx512_bf16": "avx512_bf16" in have,
        "amx": bool({"amx_bf16", "amx_tile"} & have),
    }


def hardware():
    """CPU model, cores and the dtype-relevant feature flags, for result files."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = cpu_flags()
    features = (
        ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
        if flags
        else "CPU flags unknown"
    )
    return f"{model}, {os.cpu_count()} cores ({features})"


# --------------------------------------------------------------------- worker
def _setup_tf(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def _matmul_gflops(tf, n=2048, reps=5):
    a = tf.random.normal([n, n], seed=1)
    mm = tf.function(lambda x: tf.matmul(x, x))
    mm(a).numpy()
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            r = mm(a)
        r.numpy()
        rates.append(reps * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return max(rates)


def worker_write(args):
    """Random weights written in the original format by the project's writer."""
    _setup_tf(args.threads)
    import keras

    import keras_elmo

    keras.utils.set_random_seed(args.seed)
    layer = keras_elmo.ElmoLayer(keras_elmo.published_options(args.model))
    layer.save_original(args.options_file, args.weight_file)


def worker_run(args):
    tf = _setup_tf(args.threads)
    import keras_elmo
    from keras_elmo import batch_to_ids

    gpus = tf.config.list_physical_devices("GPU")
    mm_before = _matmul_gflops(tf)
    layer = keras_elmo.ElmoLayer.from_original(
        args.options_file, args.weight_file, matmul_dtype=args.matmul_dtype
    )
    max_chars = layer.max_chars
    call = tf.function(
        lambda ids: layer(ids), input_signature=[tf.TensorSpec([None, None, max_chars], tf.int32)]
    )
    sents, _ = make_sentences(args.sentences, args.seed, args.data)
    b = args.batch_size
    batches = [sents[i : i + b] for i in range(0, len(sents), b)]
    n_tokens = sum(len(s) for s in sents)

    def one_pass():
        t = time.perf_counter()
        for batch in batches:
            call(tf.constant(batch_to_ids(batch, max_chars))).numpy()
        return time.perf_counter() - t

    # The arithmetic this implementation does execute (nominal per-part FLOPs):
    # the char CNN on each distinct token of a batch (an upper bound: the conv
    # also skips pure-padding windows) and the biLM on tokens + <S> + </S>.
    parts = flops_per_token(layer.options)
    executed = 0
    for batch in batches:
        ids = batch_to_ids(batch, max_chars).reshape(-1, max_chars)
        n_unique = len({row.tobytes() for row in ids if row.any()}) + 2
        executed += n_unique * (parts["char_cnn"] + parts["highway"] + parts["projection"])
        executed += sum(len(s) + 2 for s in batch) * parts["bilm"]

    one_pass()  # warm-up: tracing, first-touch of the weights
    times = [one_pass() for _ in range(args.repeats)]
    result = {
        "model": args.model,
        "batch_size": b,
        "sentences": len(sents),
        "tokens": n_tokens,
        "pass_s": times,
        "tokens_per_s": n_tokens / statistics.median(times),
        "sentences_per_s": len(sents) / statistics.median(times),
        "executed_gflops": executed / statistics.median(times) / 1e9,
    }
    if b == 1:
        sent = (make_sentences(1, args.seed + 1, args.data)[0][0] * 2)[:LATENCY_TOKENS]
        ids = batch_to_ids([sent], max_chars)
        call(tf.constant(ids)).numpy()
        lat = []
        for _ in range(max(5, args.repeats * 3)):
            t = time.perf_counter()
            call(tf.constant(batch_to_ids([sent], max_chars))).numpy()
            lat.append(time.perf_counter() - t)
        result["latency_ms"] = 1000 * statistics.median(lat)
        result["latency_tokens"] = len(sent)
    result["matmul_gflops"] = (mm_before + _matmul_gflops(tf)) / 2
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if gpus:
        info = tf.config.experimental.get_memory_info("GPU:0")
        result["gpu_peak_mb"] = info["peak"] / 2**20
        details = tf.config.experimental.get_device_details(gpus[0])
        result["device"] = details.get("device_name", "GPU")
    else:
        result["device"] = "CPU"
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------- driver
def _sub(argv, env):
    return run_worker(__file__, argv, env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="comma-separated published sizes (small, medium, original)",
    )
    parser.add_argument("--batch-sizes", default="1,32,128")
    parser.add_argument("--sentences", type=int, default=128, help="sentences per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TF intra- and inter-op threads (0: TensorFlow's default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--matmul-dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="ElmoLayer(matmul_dtype=...): the lower-precision path",
    )
    parser.add_argument(
        "--data", default=None, help="Brown corpus folder (default $KERAS_ELMO_DATA/brown)"
    )
    parser.add_argument(
        "--weights-dir", default=None, help="where to write the hdf5 files (default: a temp dir)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="markdown file (default benchmarks/results/bench_elmo_<device>.md)",
    )
    # internal: one measurement in this process
    parser.add_argument("--worker", choices=("write", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--options-file", help=argparse.SUPPRESS)
    parser.add_argument("--weight-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "write":
        return worker_write(args)
    if args.worker == "run":
        return worker_run(args)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    env = dict(os.environ)
    repo = os.path.dirname(HERE)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sys.path.insert(0, repo)
    import tensorflow as tf

    import keras_elmo

    weights_dir = args.weights_dir or tempfile.mkdtemp(prefix="keras_elmo_bench_")
    os.makedirs(weights_dir, exist_ok=True)
    common = [
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--matmul-dtype",
        args.matmul_dtype,
        "--sentences",
        str(args.sentences),
        "--repeats",
        str(args.repeats),
    ]
    if args.data:
        common += ["--data", args.data]
    _, text_source = make_sentences(args.sentences, args.seed, args.data)
    results = []
    for model in models:
        opt = os.path.join(weights_dir, f"{model}_options.json")
        w = os.path.join(weights_dir, f"{model}_weights.hdf5")
        if not (os.path.exists(opt) and os.path.exists(w)):
            _sub(
                ["--worker", "write", "--model", model, "--options-file", opt, "--weight-file", w]
                + common,
                env,
            )
        for b in batch_sizes:
            out = _sub(
                [
                    "--worker",
                    "run",
                    "--model",
                    model,
                    "--batch-size",
                    str(b),
                    "--options-file",
                    opt,
                    "--weight-file",
                    w,
                ]
                + common,
                env,
            )
            res = json.loads(
                [line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:]
            )
            res["flops_per_token"] = flops_per_token(keras_elmo.published_options(model))["total"]
            res["gflops"] = res["tokens_per_s"] * res["flops_per_token"] / 1e9
            results.append(res)
            print(
                f"# {model} batch {b}: {res['tokens_per_s']:.1f} tokens/s, "
                f"matmul {res['matmul_gflops']:.0f} GFLOP/s",
                file=sys.stderr,
                flush=True,
            )

    device = results[0]["device"] if results else "CPU"
    lines = [
        f"### bench_elmo: {device}",
        "",
        f"- hardware: {hardware()}" + (f", GPU: {device}" if device != "CPU" else ""),
        f"- TensorFlow {tf.__version__}, Keras {__import__('keras').__version__}, "
        f"Python {platform.python_version()}, threads: {args.threads or 'TF default'}, "
        f"LSTM matmul operands: {args.matmul_dtype}",
        f"- text: {args.sentences} {text_source}; {args.repeats} timed passes after 1 warm-up, median",
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/bench_elmo.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        "",
        "| model | batch | tokens/s | sentences/s | peak memory | MFLOP/token | model GFLOP/s | executed GFLOP/s | matmul GFLOP/s | % of matmul (executed) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        mem = f"{r['peak_rss_mb']:.0f} MB RSS" + (
            f", {r['gpu_peak_mb']:.0f} MB GPU" if "gpu_peak_mb" in r else ""
        )
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['tokens_per_s']:.0f} | {r['sentences_per_s']:.1f} | "
            f"{mem} | {r['flops_per_token'] / 1e6:.0f} | {r['gflops']:.1f} | {r['executed_gflops']:.1f} | "
            f"{r['matmul_gflops']:.0f} | {100 * r['executed_gflops'] / r['matmul_gflops']:.0f}% |"
        )
    lat = [r for r in results if "latency_ms" in r]
    if lat:
        lines += [
            "",
            f"Single-sentence latency (batch 1, {LATENCY_TOKENS} tokens, median):",
            "",
            "| model | latency | matmul GFLOP/s |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {r['model']} | {r['latency_ms']:.0f} ms | {r['matmul_gflops']:.0f} |" for r in lat
        ]
    suffix = "" if args.matmul_dtype == "float32" else "_" + args.matmul_dtype
    output = args.output or os.path.join(
        HERE, "results", "bench_elmo_" + ("gpu" if device != "CPU" else "cpu") + suffix + ".md"
    )
    write_table(lines, output)
    with open(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
