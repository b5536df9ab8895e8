"""Bounded serving, measured: oversized requests fail fast, requests at the limits fit in ~2 GB.

Builds an ElmoLayer with the published full-size "original" options and
random weights, exports it with the default request limits
(`keras_elmo.limits.SERVING_DEFAULTS`), then serves it from a fresh process
that imports only TensorFlow (as a server would) and sends, one after the
other:

- over the limits: one sentence of 100,000 tokens, 250 sentences of 400
  tokens (100,000 tokens), `max_batch_size` sentences of
  `max_tokens_per_sentence` tokens, 20,000 one-word sentences, and a
  `tokens` request 1 x 100,000;
- at the limits: one sentence of `max_tokens_per_sentence` tokens, and
  `max_batch_size` sentences filling `max_tokens_per_request` positions,
  with ordinary words and with all-distinct 48-byte tokens (the char CNN's
  worst case), through both signatures.

For each request: wall time, the error (over) or the output shape (at the
limit), and the serving process's peak resident memory during the request
(VmHWM after resetting it through /proc/self/clear_refs just before) and
its resident memory before it. Writes benchmarks/results/serving_limits.md
(and .json).

    python benchmarks/serving_limits.py [--size original] [--dir /tmp/elmo_limits]

Heavy: the full-size export is ~380 MB and the at-limit requests take tens
of seconds each on 2 cores.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from _results import write_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

SERVER = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

path, limits = sys.argv[1], json.loads(sys.argv[2])
loaded = tf.saved_model.load(path)
text, tokens_sig = loaded.signatures["serving_default"], loaded.signatures["tokens"]
S, R, B = (limits[k] for k in ("max_tokens_per_sentence", "max_tokens_per_request", "max_batch_size"))

def words(n, start=0):
    return [f"w{(start + i) % 5000}" for i in range(n)]
def distinct(n, start):
    # 48 UTF-8 bytes each, all different: the char CNN cannot share work.
    return [f"{start + i:08d}" + "x" * 40 for i in range(n)]
def as_text(rows):
    return {"default": tf.constant([" ".join(r) for r in rows])}
def as_tokens(rows):
    width = max(len(r) for r in rows)
    return {"tokens": tf.constant([r + [""] * (width - len(r)) for r in rows]),
            "sequence_len": tf.constant([len(r) for r in rows], tf.int32)}

per_row = R // B
requests = [
    ("warm-up: 2 sentences x 8 tokens", text, as_text([words(8), words(8, 8)]), None),
    ("warm-up, tokens: 2 x 8", tokens_sig, as_tokens([words(8), words(8, 8)]), None),
    ("1 sentence x 100,000 tokens", text, as_text([words(100_000)]), "max_tokens_per_sentence"),
    ("250 sentences x 400 tokens (100,000)", text,
     as_text([words(400, 400 * i) for i in range(250)]), "max_batch_size"),
    (f"{B} sentences x {S} tokens", text,
     as_text([words(S, S * i) for i in range(B)]), "max_tokens_per_request"),
    ("20,000 sentences x 1 token", text, as_text([words(1, i) for i in range(20_000)]),
     "max_batch_size"),
    ("tokens: 1 x 100,000", tokens_sig, as_tokens([words(100_000)]), "max_tokens_per_sentence"),
    (f"at limit: 1 sentence x {S} tokens", text, as_text([words(S)]), None),
    (f"at limit: {B} sentences x {per_row} tokens", text,
     as_text([words(per_row, per_row * i) for i in range(B)]), None),
    (f"at limit: {B} x {per_row} distinct 48-byte tokens", text,
     as_text([distinct(per_row, per_row * i) for i in range(B)]), None),
    (f"at limit, tokens: {B} x {per_row} distinct 48-byte tokens", tokens_sig,
     as_tokens([distinct(per_row, 10**6 + per_row * i) for i in range(B)]), None),
]
results = []
for name, fn, inputs, limit in requests:
    rss_before = status("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    try:
        out = fn(**inputs)
        outcome = "ok, elmo " + "x".join(str(d) for d in out["elmo"].shape)
        failed = False
    except tf.errors.InvalidArgumentError as err:
        lines = [l for l in err.message.splitlines() if "keras_elmo:" in l]
        outcome = (lines[-1].strip() if lines else err.message.splitlines()[0])[:160]
        failed = True
    seconds = time.perf_counter() - t0
    results.append({"request": name, "expected_limit": limit, "failed": failed,
                    "outcome": outcome, "seconds": seconds, "rss_before": rss_before,
                    "peak_rss": status("VmHWM")})
    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
print(json.dumps(results))
"""


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="original", choices=("small", "medium", "original"))
    parser.add_argument("--dir", default=None, help="export base dir (default: a temp dir)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "serving_limits"))
    args = parser.parse_args(argv)

    import numpy as np

    sys.path.insert(0, os.path.dirname(HERE))
    import keras_elmo
    from keras_elmo import limits
    from keras_elmo.serving import export

    base = args.dir or tempfile.mkdtemp(prefix="elmo_limits_")
    try:
        layer = keras_elmo.ElmoLayer(keras_elmo.published_options(args.size), output_mode="dict")
        layer.build()
        rng = np.random.default_rng(0)
        for var in layer.weights:  # random weights of a sane scale
            var.assign(rng.normal(0, 0.05, var.shape).astype("float32"))
        path = export.export_saved_model(layer, base)
        del layer
        bounds = dict(limits.SERVING_DEFAULTS)
        proc = subprocess.run(
            [sys.executable, "-c", SERVER, path, json.dumps(bounds)],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),  # TensorFlow only: keras_elmo not importable
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            return 1
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)

    mib = 2**20
    lines = [
        f"Serving limits, size `{args.size}` (random weights), default limits {bounds}; "
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; TensorFlow-only serving process.",
        "",
        "| request | outcome | seconds | RSS before (MiB) | peak RSS during (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['request']} | {r['outcome']} | {r['seconds']:.2f} | "
            f"{r['rss_before'] / mib:.0f} | {r['peak_rss'] / mib:.0f} |"
        )
    write_table(lines, args.out + ".md")
    with open(args.out + ".json", "w") as f:
        json.dump({"size": args.size, "limits": bounds, "results": results}, f, indent=1)
    ok = all(
        (r["failed"] and r["expected_limit"] in r["outcome"] and r["seconds"] < 1.0)
        if r["expected_limit"]
        else not r["failed"]
        for r in results
    )
    worst = max(r["peak_rss"] for r in results) / mib
    print(f"all as expected: {ok}; highest peak RSS {worst:.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
