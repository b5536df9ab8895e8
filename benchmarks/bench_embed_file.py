"""Throughput and peak memory of `keras-elmo embed` on files of 5k and 50k sentences.

    python benchmarks/bench_embed_file.py                  # small model, 5000 and 50000 lines
    python benchmarks/bench_embed_file.py --sizes 5000 --model small

Writes random small-model weights in the original format (the project's own
writer), generates files of seeded 10-40 token sentences (see
bench_elmo.make_sentences), and runs `keras_elmo.cli.main(["embed", ...,
"--top", "--batch-size", B, "--quiet"])` on each file in a fresh subprocess,
reporting lines/s, tokens/s and peak RSS. For comparison the layer's own
throughput at the same batch size is measured the same way as bench_elmo
does (fresh subprocess, tf.function, random sentence order). Peak RSS should
not grow with the file: the CLI streams it in sorted chunks.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from _results import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_elmo  # noqa: E402


def worker_embed(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from keras_elmo import cli

    mm = bench_elmo._matmul_gflops(tf)
    t = time.perf_counter()
    rc = cli.main(
        [
            "embed",
            args.input,
            args.output_file,
            "--options-file",
            args.options_file,
            "--weight-file",
            args.weight_file,
            "--top",
            "--batch-size",
            str(args.batch_size),
            "--quiet",
        ]
    )
    wall = time.perf_counter() - t
    if rc not in (None, 0):
        raise SystemExit(f"keras-elmo embed returned {rc}")
    with open(args.input, encoding="utf-8") as f:
        lines = [line.split() for line in f]
    result = {
        "lines": len(lines),
        "tokens": sum(len(tokens) for tokens in lines),
        "wall_s": wall,
        "matmul_gflops": (mm + bench_elmo._matmul_gflops(tf)) / 2,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "output_mb": os.path.getsize(args.output_file) / 2**20,
    }
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--sizes", default="5000,50000", help="lines per generated file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", default=None, help="Brown corpus folder (default $KERAS_ELMO_DATA/brown)"
    )
    parser.add_argument(
        "--workdir", default=None, help="for the weights, inputs and outputs (default: temp)"
    )
    parser.add_argument(
        "--output", default=os.path.join(HERE, "results", "bench_embed_file_cpu.md")
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output-file", help=argparse.SUPPRESS)
    parser.add_argument("--options-file", help=argparse.SUPPRESS)
    parser.add_argument("--weight-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_embed(args)

    import tensorflow as tf

    env = dict(os.environ)
    repo = os.path.dirname(HERE)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    work = args.workdir or tempfile.mkdtemp(prefix="keras_elmo_embed_bench_")
    os.makedirs(work, exist_ok=True)
    opt, w = os.path.join(work, "options.json"), os.path.join(work, "weights.hdf5")
    py = [sys.executable]
    common = ["--seed", str(args.seed)] + (["--data", args.data] if args.data else [])
    if not (os.path.exists(opt) and os.path.exists(w)):
        bench_elmo._sub(
            [
                "--worker",
                "write",
                "--model",
                args.model,
                "--options-file",
                opt,
                "--weight-file",
                w,
                "--threads",
                "0",
            ]
            + common,
            env,
        )
    # The layer's own rate at the same batch size, for comparison.
    out = bench_elmo._sub(
        [
            "--worker",
            "run",
            "--model",
            args.model,
            "--batch-size",
            str(args.batch_size),
            "--options-file",
            opt,
            "--weight-file",
            w,
            "--threads",
            "0",
            "--sentences",
            str(4 * args.batch_size),
            "--repeats",
            "3",
        ]
        + common,
        env,
    )
    layer = json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        sents, source = bench_elmo.make_sentences(n, args.seed, args.data, replace=True)
        path = os.path.join(work, f"sentences_{n}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(" ".join(s) + "\n" for s in sents)
        cmd = py + [
            os.path.abspath(__file__),
            "--worker",
            "--input",
            path,
            "--output-file",
            os.path.join(work, f"out_{n}.hdf5"),
            "--options-file",
            opt,
            "--weight-file",
            w,
            "--batch-size",
            str(args.batch_size),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(
            [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:]
        )
        os.remove(os.path.join(work, f"out_{n}.hdf5"))
        rows.append(res)
        print(
            f"# {n} lines: {res['tokens'] / res['wall_s']:.0f} tokens/s",
            file=sys.stderr,
            flush=True,
        )

    lines = [
        f"### bench_embed_file: `keras-elmo embed --top`, {args.model} model, batch {args.batch_size}",
        "",
        f"- hardware: {bench_elmo.hardware()}; TensorFlow {tf.__version__}, Python {platform.python_version()}",
        f"- input: {source}; wall time includes start-up of the model (load + first trace) and writing hdf5",
        "",
        "| run | lines | tokens | wall | tokens/s | lines/s | peak RSS | output | matmul GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| ElmoLayer alone (tf.function, {4 * args.batch_size} sentences x 3, median) | "
        f"{layer['sentences']} | {layer['tokens']} | - | {layer['tokens_per_s']:.0f} | "
        f"{layer['sentences_per_s']:.1f} | {layer['peak_rss_mb']:.0f} MB | - | {layer['matmul_gflops']:.0f} |",
    ]
    for r in rows:
        lines.append(
            f"| keras-elmo embed | {r['lines']} | {r['tokens']} | {r['wall_s']:.1f} s | "
            f"{r['tokens'] / r['wall_s']:.0f} | {r['lines'] / r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} MB | "
            f"{r['output_mb']:.0f} MB | {r['matmul_gflops']:.0f} |"
        )
    write_table(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
