"""What the benchmarks share: worker processes, and the tail: the markdown table printed
and written to results/."""

import os
import subprocess
import sys


def run_worker(script, argv, env):
    """`python SCRIPT ARGV` with `env`; its stdout (a RuntimeError with the end of its stderr
    if it fails)."""
    cmd = [sys.executable, os.path.abspath(script)] + list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def write_table(lines, path):
    """Join `lines` into a markdown text, print it, write it to `path`; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


def header(script, argv, facts):
    """A results file's head: `### script`, then the hardware, `facts` (lines), date and command."""
    import datetime
    import sys

    from bench_elmo import hardware

    command = " ".join(argv if argv is not None else sys.argv[1:])
    return [
        f"### {script}",
        "",
        f"- hardware: {hardware()}",
        *(f"- {fact}" for fact in facts),
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/{script}.py {command}`".rstrip(),
    ]
