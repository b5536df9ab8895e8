"""Running Python in a fresh process for a test: the parent checks its exit
status and reads back what it printed last, as JSON."""

import json
import os
import subprocess
import sys
import time

from support.paths import REPO


def run_python_json(args, timeout=300, env=None, cwd=REPO):
    """Run `python *args`; fail with the end of its stderr unless it exits 0;
    return its last line of stdout parsed as JSON."""
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_script_with_report(script, argv, tmp_path, *, cwd, env_extra=None, timeout=300):
    """Run `python -c SCRIPT ARGV` with the environment a user has (TensorFlow's
    log level unset); the script writes a JSON report to $CLI_REPORT.

    Returns (completed process, seconds it ran, the report or None if none was written).
    """
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["CLI_REPORT"] = str(report)
    env.update(env_extra or {})
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    return proc, seconds, json.loads(report.read_text()) if report.exists() else None
