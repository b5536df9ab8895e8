"""`keras-elmo beam-embed` (DirectRunner, one worker) against `keras-elmo embed` on one file.

    python benchmarks/bench_beam.py                   # 5,000 Brown sentences, shipped model
    python benchmarks/bench_beam.py --lines 1000 --repeats 1 --format tfrecord

The input is the first N sentences of the Brown corpus ($KERAS_ELMO_DATA or
../shared/data, as `examples/corpora.py`'s `data_root` finds it), one tokenized
sentence per line. Both commands run the same model (the shipped
elmo-small-en unless --options-file/--weight-file), the same layer choice and
the same batch size, each in a fresh subprocess, alternating A/B so that a
change in the machine's load hits both. Timed: the library call that the
command runs (`embed_file.embed_file`, `beam.embed_corpus`), model loading
and writing included, TensorFlow's import excluded; peak RSS is the
subprocess's. Prints a markdown table and writes it with the machine's
details to benchmarks/results/beam_<date>.json.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

RUN = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, sys.argv[1])
import tensorflow  # noqa: F401  (imported before the clock starts, for both)
args = json.loads(sys.argv[2])
start = time.perf_counter()
if args["which"] == "embed":
    from keras_elmo.jobs import embed_file
    embed_file.embed_file(args["input"], os.path.join(args["out"], "out.hdf5"),
                          args["options"], args["weights"], layers=args["layers"],
                          batch_size=args["batch_size"])
else:
    from keras_elmo.integrations import beam
    source = beam.ModelSource(options_file=args["options"], weight_file=args["weights"])
    beam.embed_corpus(args["input"], os.path.join(args["out"], "beam"), source,
                      layers=args["layers"], file_format=args["format"],
                      batch_size=args["batch_size"],
                      pipeline_options=["--runner=DirectRunner", "--direct_num_workers=1"])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak}))
"""


def brown_lines(n):
    sys.path.insert(0, REPO)
    sys.path.insert(0, os.path.join(REPO, "examples"))
    import corpora

    root = corpora.data_root()
    lines = []
    train, held_out = corpora.brown_files(os.path.join(root, "brown"))
    for path in sorted(train + held_out):
        for sentence in corpora.read_brown(path):
            lines.append(" ".join(sentence))
            if len(lines) == n:
                return lines
    raise SystemExit(f"only {len(lines)} Brown sentences found, {n} asked for")


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return platform.processor()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "")
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma")
    return f"{name} ({os.cpu_count()} CPUs; {' '.join(f for f in wanted if f in flags)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--layers", default="all", choices=("all", "top", "average"))
    parser.add_argument("--format", default="hdf5", choices=("hdf5", "tfrecord"))
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs")
    model_dir = os.path.join(REPO, "saved_models", "elmo-small-en")
    parser.add_argument("--options-file", default=os.path.join(model_dir, "options.json"))
    parser.add_argument("--weight-file", default=os.path.join(model_dir, "weights.hdf5"))
    args = parser.parse_args()

    lines = brown_lines(args.lines)
    tokens = sum(len(line.split()) for line in lines)
    results = {"embed": [], "beam-embed": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "brown.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        for repeat in range(args.repeats):
            for which in ("embed", "beam-embed"):
                out = tempfile.mkdtemp(dir=tmp)
                job = {
                    "which": "embed" if which == "embed" else "beam",
                    "input": src,
                    "out": out,
                    "options": args.options_file,
                    "weights": args.weight_file,
                    "layers": args.layers,
                    "format": args.format,
                    "batch_size": args.batch_size,
                }
                result = run_job(RUN, job, which)
                results[which].append(result)
                print(
                    f"repeat {repeat} {which}: {result['seconds']:.1f} s, "
                    f"peak {result['peak_mb']:.0f} MB",
                    file=sys.stderr,
                )

    rows = []
    median = {}
    for which, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        median[which] = seconds
        peak = max(r["peak_mb"] for r in runs)
        rows.append(
            f"| {which} | {args.lines} | {tokens} | {args.batch_size} | {args.layers} | "
            f"{seconds:.1f} | {args.lines / seconds:.0f} | {tokens / seconds:.0f} | {peak:.0f} |"
        )
    ratio = median["embed"] / median["beam-embed"]
    table = "\n".join(
        [
            "| command | lines | tokens | batch | layers | seconds (median) | lines/s | tokens/s "
            "| peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    print(f"\nbeam-embed throughput / embed throughput: {ratio:.2f}")
    write_record("beam", args, results, ratio, table)


def run_job(script, job, which):
    """`python -c SCRIPT REPO JOB` in a fresh interpreter; the JSON of its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", script, REPO, json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_record(prefix, args, results, ratio, table, **extra):
    """results/PREFIX_DATE.json: the run's machine, arguments, runs, ratio and table."""
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "load_average": os.getloadavg(),
        "args": vars(args),
        "runs": results,
        "ratio": ratio,
        "table": table,
        **extra,
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = f"{prefix}_{datetime.date.today().isoformat()}.json"
    with open(os.path.join(HERE, "results", name), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
