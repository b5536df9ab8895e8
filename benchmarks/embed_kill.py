"""What survives a real SIGKILL of `keras-elmo embed`, and does --resume give the same file.

    python benchmarks/embed_kill.py                        # this checkout, 4 kills
    python benchmarks/embed_kill.py --old-repo DIR         # a checkout without resume (before)

Runs the shipped small model on seeded Brown sentences (bench_elmo.make_sentences):
one uninterrupted run (the reference, timed, also the time its first write
appears), then `--kills` runs each killed with SIGKILL at a seeded point of
its writing phase: this checkout, once 1-4 parts are committed in
OUTPUT.partial/ (seeded), then uniform 0 to --flush-seconds later; before
(--old-repo), once the output file changed, uniform 0-90% of the
reference's writing time later.
After each kill it records what the output path holds (absent, the old file,
readable or not), and for this checkout: the committed parts in
OUTPUT.partial/ (all must open with h5py), the lines they hold, the work lost
(seconds from the newest committed part to the kill), then runs `--resume`
and compares the result with the reference (dataset names, sentence_to_index,
values: bitwise, and the largest difference). --old-repo runs the command of
another checkout (e.g. `git archive ede5b29`) to show what a kill did before.
"""

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from _results import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_elmo  # noqa: E402


def embed_cmd(repo, src, out, model_dir, extra):
    return (
        [sys.executable, "-m", "keras_elmo.cli", "embed", src, out]
        + ["--options-file", os.path.join(model_dir, "options.json")]
        + ["--weight-file", os.path.join(model_dir, "weights.hdf5"), "--quiet"]
        + extra
    )


def run(cmd, repo):
    env = {**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def read_output(path):
    with h5py.File(path, "r") as f:
        return json.loads(f["sentence_to_index"][0]), {
            name: f[name][...] for name in f if name != "sentence_to_index"
        }


def compare(path, reference):
    index, data = read_output(path)
    ref_index, ref_data = read_output(reference)
    if index != ref_index or sorted(data) != sorted(ref_data):
        return "different datasets", None
    bitwise = all(np.array_equal(data[k], ref_data[k]) for k in ref_data)
    worst = max(float(np.abs(data[k] - ref_data[k]).max()) for k in ref_data)
    return ("bitwise equal" if bitwise else "not bitwise"), worst


def inspect_target(out, old_bytes):
    if not os.path.exists(out):
        return "absent"
    with open(out, "rb") as f:
        if f.read() == old_bytes:
            return "the old file, unchanged"
    try:
        with h5py.File(out, "r") as f:
            names = list(f)
            if f.attrs.get("complete", False):
                return f"the complete new file ({len(names) - 1} lines)"
            complete = "sentence_to_index" in names
            return f"readable, {len(names) - complete} datasets" + (
                "" if complete else ", no sentence_to_index"
            )
    except OSError as err:
        return f"unreadable ({str(err).splitlines()[0][:60]})"


def inspect_parts(folder, killed_at):
    parts = sorted(p for p in os.listdir(folder) if p.startswith("part-") and p.endswith(".hdf5"))
    lines, unreadable = 0, 0
    for name in parts:
        try:
            with h5py.File(os.path.join(folder, name), "r") as f:
                assert f.attrs["complete"]
                lines += len(f)
        except (OSError, KeyError, AssertionError):
            unreadable += 1
    newest = max((os.path.getmtime(os.path.join(folder, p)) for p in parts), default=None)
    lost = killed_at - newest if newest is not None else None
    return len(parts), unreadable, lines, lost


def committed(out):
    folder = out + ".partial"
    if not os.path.isdir(folder):
        return []
    return [p for p in os.listdir(folder) if p.startswith("part-") and p.endswith(".hdf5")]


def writing(out, new, old_bytes):
    """Has the run started writing? (a committed part; before: the output changed)"""
    if new:
        folder = out + ".partial"
        return os.path.isdir(folder) and any(p.endswith(".hdf5") for p in os.listdir(folder))
    if not os.path.exists(out):
        return False
    with open(out, "rb") as f:
        return f.read(len(old_bytes) + 1) != old_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--flush-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--old-repo", help="run this checkout's command instead (no resume)")
    parser.add_argument("--workdir", default="/tmp/keras_elmo_embed_kill")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "embed_kill.md"))
    args = parser.parse_args(argv)

    repo = os.path.abspath(args.old_repo or os.path.dirname(HERE))
    model_dir = os.path.join(repo, "saved_models", "elmo-small-en")
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.join(args.workdir, "in.txt")
    sents, source = bench_elmo.make_sentences(args.lines, args.seed, replace=True)
    with open(src, "w", encoding="utf-8") as f:
        f.writelines(" ".join(s) + "\n" for s in sents)
    extra = ["--batch-size", str(args.batch_size)]
    new = not args.old_repo
    if new:
        extra += ["--flush-seconds", str(args.flush_seconds)]

    reference = os.path.join(args.workdir, "reference.hdf5")
    start = time.monotonic()
    proc = run(embed_cmd(repo, src, reference, model_dir, extra), repo)
    first_write = None
    while proc.poll() is None:
        if first_write is None and writing(reference, new, b""):
            first_write = time.monotonic() - start
        time.sleep(0.05)
    total = time.monotonic() - start
    err = proc.stderr.read()
    if proc.returncode != 0 or first_write is None:
        raise SystemExit(err)

    rng = random.Random(args.seed)
    rows = []
    for k in range(args.kills):
        out = os.path.join(args.workdir, f"out_{k}.hdf5")
        with h5py.File(out, "w") as f:
            f.create_dataset("old", data=[1.0])
        with open(out, "rb") as f:
            old_bytes = f.read()
        start = time.monotonic()
        proc = run(embed_cmd(repo, src, out, model_dir, extra), repo)
        if new:
            # Mid-embedding: once 1-4 parts are committed, then within one interval.
            want = rng.randint(1, 4)
            while len(committed(out)) < want and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, args.flush_seconds))
        else:
            while not writing(out, new, old_bytes) and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.9) * (total - first_write))
        at = time.monotonic() - start
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        row = {"kill_s": at, "target": inspect_target(out, old_bytes)}
        folder = out + ".partial"
        if new and os.path.isdir(folder):
            row["parts"], row["unreadable"], row["lines"], row["lost_s"] = inspect_parts(
                folder, killed_at
            )
            t = time.monotonic()
            proc = run(embed_cmd(repo, src, out, model_dir, extra + ["--resume"]), repo)
            _, err = proc.communicate()
            row["resume_s"] = time.monotonic() - t
            row["resume"] = compare(out, reference) if proc.returncode == 0 else err[-200:]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    title = "before (no resume)" if args.old_repo else "this checkout"
    lines = [
        f"### embed_kill: SIGKILL during `keras-elmo embed`, {title}",
        "",
        f"- hardware: {bench_elmo.hardware()}; Python {platform.python_version()}",
        f"- input: {args.lines} lines ({source}), shipped small model, batch {args.batch_size}"
        + (f", --flush-seconds {args.flush_seconds:g}" if new else ""),
        f"- uninterrupted run: {total:.1f} s wall (start-up included), first write at "
        f"{first_write:.1f} s; "
        + (
            "each kill lands once 1-4 parts are committed, then 0 to --flush-seconds later"
            if new
            else "each kill lands 0-90% of the writing time after the run's first write"
        ),
        "",
    ]
    if new:
        lines += [
            "| kill at | output path after the kill | committed parts (unreadable) | lines saved "
            "| work lost | --resume wall | resumed file vs uninterrupted |",
            "|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            lost = "-" if r.get("lost_s") is None else f"{r['lost_s']:.1f} s"
            verdict = r.get("resume")
            if verdict is None:
                verdict = "- (nothing to resume)"
            elif isinstance(verdict, tuple) and verdict[1] is not None:
                verdict = f"{verdict[0]} (max diff {verdict[1]:.1e})"
            lines.append(
                f"| {r['kill_s']:.1f} s | {r['target']} | {r.get('parts', 0)} "
                f"({r.get('unreadable', 0)}) | {r.get('lines', 0)} / {args.lines} | {lost} "
                f"| {r.get('resume_s', 0):.1f} s | {verdict} |".replace("| 0.0 s |", "| - |")
            )
    else:
        lines += ["| kill at | output path after the kill |", "|---:|---|"]
        lines += [f"| {r['kill_s']:.1f} s | {r['target']} |" for r in rows]
    write_table(lines, args.output)


if __name__ == "__main__":
    main()
