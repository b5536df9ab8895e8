"""Running Python in a fresh process for a test: the parent checks its exit
status and reads back what it printed last, as JSON."""

import json
import subprocess
import sys

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
