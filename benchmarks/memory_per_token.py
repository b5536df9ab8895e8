"""Working memory per token of ElmoLayer (full size), one subprocess per case.

    python benchmarks/memory_per_token.py                        # 2000, 8000 tokens; 4000 one-word
    python benchmarks/memory_per_token.py --repo /path/to/older/checkout --repo .

Cases (--cases): `long:N` is one sentence of N tokens, `words:N` a batch of N
one-word sentences. Each case runs in a fresh subprocess that builds the
published "original" size with random weights (seeded), traces the call (a
`tf.function` over char ids with a dynamic (batch, time) signature, as
bench_elmo.py does) and runs it once on a small input of the same kind, so
that tracing and first-touch allocations are done. Then it resets the
kernel's peak-RSS mark (`/proc/self/clear_refs`, Linux), runs the case once
and reports two measures of the call's working memory, each also divided by
the number of tokens (positions given to the layer; <S> and </S> are added
inside): the peak of TensorFlow's CPU allocator during the call minus what
it held before (tensors only: the most direct measure), and VmHWM minus
VmRSS before the call (weights and the traced graph are resident before and
not counted; glibc's mmap threshold is fixed at 64 KiB in the subprocess so
that freed buffers leave RSS, but allocator caching still blurs this one).
The time of that call is reported too.

With several --repo the cases alternate between the checkouts (each
subprocess imports keras_elmo from its repo), so a before/after comparison
runs in one invocation on the same machine at the same hour.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from _results import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_elmo import hardware, make_sentences  # noqa: E402


def _status_kb(field):
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import keras_elmo

    kind, n = args.case.split(":")
    n = int(n)
    sents, _ = make_sentences(max(64, n // 10 + 1), args.seed, args.data, replace=True)
    words = [w for s in sents for w in s]
    while len(words) < n:
        words += words
    if kind == "long":
        batch, warm = [words[:n]], [words[:50]]
    elif kind == "words":
        batch, warm = [[w] for w in words[:n]], [[w] for w in words[:16]]
    else:
        raise SystemExit(f"unknown case kind {kind!r} (long:N or words:N)")
    keras.utils.set_random_seed(args.seed)
    layer = keras_elmo.ElmoLayer(
        keras_elmo.published_options(args.model), matmul_dtype=args.matmul_dtype
    )
    call = tf.function(
        lambda ids: layer(ids),
        input_signature=[tf.TensorSpec([None, None, layer.max_chars], tf.int32)],
    )
    call(tf.constant(keras_elmo.batch_to_ids(warm, layer.max_chars))).numpy()
    ids = tf.constant(keras_elmo.batch_to_ids(batch, layer.max_chars))
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    rss_before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t = time.perf_counter()
    call(ids).numpy()
    seconds = time.perf_counter() - t
    peak = _status_kb("VmHWM")
    tensor_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - base
    tokens = sum(len(s) for s in batch)
    result = {
        "case": args.case,
        "tokens": tokens,
        "working_mb": (peak - rss_before) / 1024,
        "bytes_per_token": (peak - rss_before) * 1024 / tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "rss_before_mb": rss_before / 1024,
        "tensor_peak_mb": tensor_peak / 2**20,
        "tensor_bytes_per_token": tensor_peak / tokens,
    }
    print("RESULT " + json.dumps(result), flush=True)


def table_row(r):
    """One measured case as a row of the results table."""
    return (
        f"| {r['code']} | {r['case']} | {r['tokens']} | {r['tensor_peak_mb']:.0f} MB | "
        f"{r['tensor_bytes_per_token'] / 1024:.1f} KB | {r['working_mb']:.0f} MB | "
        f"{r['bytes_per_token'] / 1024:.1f} KB | {r['seconds']:.1f} | {r['tokens_per_s']:.1f} |"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="long:2000,long:8000,words:4000")
    parser.add_argument(
        "--repo",
        action="append",
        help="checkout whose keras_elmo to import (repeatable; default: this one)",
    )
    parser.add_argument("--model", default="original")
    parser.add_argument("--matmul-dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="Brown corpus folder")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "memory_per_token.md"))
    parser.add_argument("--worker-case", dest="case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        return worker(args)

    repos = [os.path.abspath(r) for r in (args.repo or [REPO])]
    rows = []
    for case in args.cases.split(","):
        for repo in repos:
            # glibc keeps freed heap memory resident and reuses it, which
            # would hide allocations behind the model-building temporaries:
            # a fixed mmap threshold gives every large buffer its own mapping,
            # returned to the system when freed.
            env = dict(os.environ, PYTHONPATH=repo, MALLOC_MMAP_THRESHOLD_="65536")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker-case", case]
            cmd += ["--model", args.model, "--seed", str(args.seed)]
            cmd += ["--matmul-dtype", args.matmul_dtype]
            if args.data:
                cmd += ["--data", args.data]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo)
            if proc.returncode != 0:
                raise RuntimeError(f"{case} in {repo} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(
                [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:]
            )
            rev = subprocess.run(  # (empty for a plain copy without git)
                ["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            res["code"] = os.path.basename(repo) + (f" ({rev})" if rev else "")
            rows.append(res)
            print(
                f"# {res['code']} {case}: {res['working_mb']:.0f} MB, "
                f"{res['bytes_per_token'] / 1024:.1f} KB/token, {res['tokens_per_s']:.1f} tokens/s",
                file=sys.stderr,
                flush=True,
            )
    _, source = make_sentences(64, args.seed, args.data, replace=True)
    lines = [
        "### memory_per_token",
        "",
        f"- hardware: {hardware()}",
        f"- model: published {args.model!r}, random weights (seed {args.seed}); "
        f"LSTM matmul operands: {args.matmul_dtype}; words from {source}",
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/memory_per_token.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        "- tensor memory: the peak of TensorFlow's CPU allocator during one call minus what it "
        "held before (weights resident); RSS: peak RSS during the call minus RSS before it",
        "",
        "| code | case | tokens | tensor memory | per token | RSS growth | per token "
        "| seconds | tokens/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [table_row(r) for r in rows]
    write_table(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
