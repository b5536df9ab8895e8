"""Peak RSS of `keras-elmo embed` with one long line among short ones.

    python benchmarks/memory_long_line.py                      # the shipped model
    python benchmarks/memory_long_line.py --model original     # full size, random weights
    python benchmarks/memory_long_line.py --budgets 1024,2048,4096,8192,none

Files (written to a temporary folder, seeded): `short`, 63 lines of 3-12
tokens; `long`, the same 63 lines with one line of `--long-tokens` (16,000)
tokens among them (`--long-kind distinct`: every token a distinct word, so
the char CNN has 16,000 tokens to encode; `letters`: one-letter tokens, the
issue's 33 KB file). Each case runs
`keras-elmo embed` in a fresh subprocess (the command line's `main`, in
process) and reports its peak RSS (VmHWM at the end) and wall time. The
old fixed batching (`--batch-tokens none`: 64 lines per call, every call
padded to its longest line) is run on `long` under a watchdog that kills it
once its RSS passes `--cap-gb`, and reported as "> cap".

`--budgets` also times the token budgets on `--budget-lines` lines of
20-200 tokens (the lengths at which the budget changes the batches; at
ordinary sentence lengths 64 lines stay under any budget here), to choose
`jobs.batching.BATCH_TOKENS`.

`--model original` builds the published full-size architecture with random
weights (seeded) and saves it as an options + weights pair first (375 MB).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _results import header, write_table

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def _words(rng, n):
    """n pseudo-words of 2-9 lowercase letters."""
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return ["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(n)]


def write_files(folder, long_tokens, long_kind, budget_lines, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = _words(rng, 2000)
    short = [" ".join(rng.choice(vocab, rng.integers(3, 13))) for _ in range(63)]
    if long_kind == "distinct":
        long_line = " ".join(f"{w}{k}" for k, w in enumerate(rng.choice(vocab, long_tokens)))
    else:  # the file: one-letter tokens (33 KB in all)
        long_line = " ".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), long_tokens))
    files = {"short": short, "long": short[:31] + [long_line] + short[31:]}
    files["mixed"] = [
        " ".join(rng.choice(vocab, rng.integers(20, 201))) for _ in range(budget_lines)
    ]
    paths = {}
    for name, lines in files.items():
        paths[name] = os.path.join(folder, f"{name}.txt")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return paths, {name: sum(len(line.split()) for line in lines) for name, lines in files.items()}


def save_random_model(name, folder, seed):
    """The published `name` architecture with random weights, as an options + weights pair."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import keras_elmo

    keras.utils.set_random_seed(seed)
    layer = keras_elmo.ElmoLayer(keras_elmo.published_options(name))
    layer.build()
    paths = [os.path.join(folder, "options.json"), os.path.join(folder, "weights.hdf5")]
    layer.save_original(*paths)
    return paths


def _status_kb(pid, field):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def worker(argv):
    """One `keras-elmo embed` run in this process; prints RESULT {peak, seconds}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_elmo.cli import main

    t = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t
    result = {"code": code, "seconds": seconds, "peak_mb": _status_kb("self", "VmHWM") / 1024}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def run_case(embed_argv, cap_gb):
    """Run one case in a subprocess; kill it once its RSS passes `cap_gb` (None: no cap)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(embed_argv)]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak_kb, killed = 0, False
    while proc.poll() is None:
        try:
            rss = _status_kb(proc.pid, "VmRSS")
        except OSError:
            break
        peak_kb = max(peak_kb, rss)
        if cap_gb is not None and rss > cap_gb * 2**20:
            proc.kill()
            killed = True
            break
        time.sleep(0.02)
    out, err = proc.communicate()
    if killed:
        return {"killed": True, "peak_mb": peak_kb / 1024}
    if proc.returncode != 0:
        raise RuntimeError(f"{embed_argv} failed:\n{err[-3000:]}")
    return json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="elmo-small-en", help="elmo-small-en or original")
    parser.add_argument("--long-tokens", type=int, default=16000)
    parser.add_argument(
        "--long-kind",
        choices=("distinct", "letters"),
        default="distinct",
        help="the long line's tokens: all distinct words, or one-letter tokens (the issue's)",
    )
    parser.add_argument("--budgets", default="", help="token budgets to time, e.g. 2048,none")
    parser.add_argument("--budget-lines", type=int, default=256)
    parser.add_argument("--cap-gb", type=float, default=8.0, help="kill a case above this RSS")
    parser.add_argument("--skip-fixed", action="store_true", help="do not run the old batching")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))

    from keras_elmo.jobs import batching

    kind = "" if args.long_kind == "distinct" else f"_{args.long_kind}"
    output = args.output or os.path.join(HERE, "results", f"memory_long_line_{args.model}{kind}.md")
    rows, budget_rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        paths, tokens = write_files(
            folder, args.long_tokens, args.long_kind, args.budget_lines, args.seed
        )
        if args.model == "elmo-small-en":
            model = ["--model", "elmo-small-en"]
            model_text = "the shipped elmo-small-en"
        else:
            options_file, weight_file = save_random_model(args.model, folder, args.seed)
            model = ["--options-file", options_file, "--weight-file", weight_file]
            model_text = f"published {args.model!r} architecture, random weights (seed {args.seed})"

        def embed(name, *flags, cap=None):
            out = os.path.join(folder, f"{name}-{len(rows) + len(budget_rows)}.hdf5")
            result = run_case(["embed", paths[name], out, *model, "--quiet", *flags], cap)
            if os.path.exists(out):
                os.remove(out)
            return result

        cases = [
            ("short", "63 short lines", ()),
            ("long", f"the same + one line of {args.long_tokens:,} {args.long_kind} tokens", ()),
        ]
        for name, what, flags in cases:
            res = embed(name, *flags)
            rows.append(
                (what, f"token budget {batching.BATCH_TOKENS} (default)", tokens[name], res)
            )
            print(f"# {what}: {res['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
        if not args.skip_fixed:
            res = embed("long", "--batch-tokens", "none", cap=args.cap_gb)
            rows.append((cases[1][1], "64 lines per call (before)", tokens["long"], res))
            print(f"# fixed: {res}", file=sys.stderr, flush=True)
        for budget in [b for b in args.budgets.split(",") if b]:
            res = embed("mixed", "--batch-tokens", budget)
            budget_rows.append((budget, tokens["mixed"], res))
            print(f"# budget {budget}: {res}", file=sys.stderr, flush=True)

    base = rows[0][3]["peak_mb"]
    facts = [
        f"model: {model_text}; `keras-elmo embed` defaults (--all, --batch-size 64)",
        "peak RSS: VmHWM of the process at the end (the whole run: TensorFlow, model, "
        f"batches); a killed case is the RSS it had passed (cap {args.cap_gb:g} GB)",
    ]
    lines = header("memory_long_line", argv, facts) + [
        "",
        "| file | batching | tokens | peak RSS | x short file | seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for what, how, n, res in rows:
        if res.get("killed"):
            lines.append(f"| {what} | {how} | {n} | > {args.cap_gb:g} GB (killed) | - | - |")
        else:
            lines.append(
                f"| {what} | {how} | {n} | {res['peak_mb']:.0f} MB | "
                f"{res['peak_mb'] / base:.2f} | {res['seconds']:.1f} |"
            )
    if budget_rows:
        lines += [
            "",
            f"Token budgets on {args.budget_lines} lines of 20-200 tokens:",
            "",
            "| --batch-tokens | tokens | peak RSS | seconds | tokens/s |",
            "|---|---:|---:|---:|---:|",
        ]
        for budget, n, res in budget_rows:
            lines.append(
                f"| {budget} | {n} | {res['peak_mb']:.0f} MB | {res['seconds']:.1f} | "
                f"{n / res['seconds']:.0f} |"
            )
    write_table(lines, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
