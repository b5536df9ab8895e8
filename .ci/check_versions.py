"""Installs keras_elmo in fresh venvs at both ends of its declared ranges and tests it.

Not part of the default test run (it downloads TensorFlow once per Python
version and takes minutes per venv). For each (Python, set):

- floor:  every dependency at the lowest version pyproject.toml allows
          (`name>=X` installed as `name==X`);
- newest: whatever pip picks today for that Python (the newest releases that
          fit together and fit the declared ranges).

In each venv it installs the keras_elmo wheel built from this checkout (not
an editable install, so the tests exercise the installed package), runs a
core subset of the tests from the checkout's tests/ against it, and embeds a
3-line file with `keras-elmo embed`; the vectors of every set are compared
with those of the first set that embedded. It prints a markdown table
(docs/compatibility.md keeps one).

    python .ci/check_versions.py                       # the default matrix
    python .ci/check_versions.py --set 3.12:floor      # one set
    python .ci/check_versions.py --markdown table.md   # also write the table

Runs on Python >= 3.11 (tomllib); the venvs it makes may be older.
Pythons are looked up as `pythonX.Y` on PATH and under ~/.pyenv/versions.
Venvs go under a temporary directory (or --work DIR) and are removed after
each set unless --keep; pip's download cache is reused between sets.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SETS = [
    "3.10:floor",
    "3.11:floor",
    "3.12:floor",
    "3.10:newest",
    "3.11:newest",
    "3.12:newest",
    "3.13:newest",
]
# The core subset: text -> char ids, the mix, the bilm-tf fixture replayed by
# the layer (both LSTM layouts), the numpy reference, the import layering.
CORE_TESTS = [
    "tests/test_characters.py",
    "tests/test_scalar_mix.py",
    "tests/test_architecture.py",
    "tests/test_layer.py::test_fixture_reproduced_stateful",
    "tests/test_layer.py::test_matches_numpy_reference",
    "tests/test_layer.py::test_string_tokens_equal_char_ids_exactly",
    "tests/test_layer.py::test_keras_mask_reaches_downstream_layers",
]
TEST_TOOLS = ["pytest", "hypothesis"]
SHOWN = ["tensorflow", "keras", "numpy", "h5py", "tqdm"]
LINES = ["The cat sat on the mat .", "Hello world !", "ELMo vectors from a Keras layer ."]

REPORT_VERSIONS = """
import importlib.metadata as m, keras_elmo, sys
print(sys.version.split()[0], *[m.version(n) for n in {names!r}], keras_elmo.__file__)
"""
COMPARE = """
import h5py, numpy as np, sys
with h5py.File(sys.argv[1]) as got:
    arrays = [np.asarray(got[str(i)]) for i in range({n})]
shapes = [a.shape for a in arrays]
if len(sys.argv) > 2:
    with h5py.File(sys.argv[2]) as ref:
        diff = max(float(np.max(np.abs(a - np.asarray(ref[str(i)])))) for i, a in enumerate(arrays))
    print(shapes, diff)
else:
    print(shapes, "reference")
"""


def declared_floors():
    """{name: floor} from pyproject.toml's `name>=X` dependencies."""
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    floors = {}
    for spec in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)\s*(,.*)?", spec)
        if not match:
            raise SystemExit(f"check_versions: no floor to read in dependency {spec!r}")
        floors[match.group(1)] = match.group(2)
    return floors


def find_python(version):
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    for path in candidates:
        if path and os.path.exists(path):
            # A pyenv shim on PATH may name a version it cannot run.
            out = subprocess.run([path, "-V"], capture_output=True, text=True).stdout.split()
            if len(out) == 2 and out[1].startswith(version + "."):
                return path
    return None


def run(cmd, log, cwd=None, env=None):
    """Runs `cmd` at low priority, appending its output to `log`; True if it succeeded."""
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        proc = subprocess.run(
            ["nice", "-n", "10", *map(str, cmd)],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )
    return proc.returncode == 0


def output(cmd, cwd=None):
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, cwd=cwd)
    return proc.stdout.strip() if proc.returncode == 0 else None


def pytest_summary(log):
    """The last pytest summary line in `log` ("12 passed, 1 failed in 3.2s")."""
    lines = [
        ln for ln in Path(log).read_text().splitlines() if re.search(r"\d+ (passed|failed)", ln)
    ]
    return re.sub(r"\s+in [\d.]+s.*$", "", lines[-1].strip("= ")) if lines else "no summary"


def check_set(python_version, kind, wheel, work, model, reference):
    row = {"python": python_version, "set": kind}
    python = find_python(python_version)
    if python is None:
        return {**row, "result": f"no python{python_version} here"}
    root = work / f"py{python_version}-{kind}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = root / "log.txt"
    row["log"] = str(log)
    venv = root / "venv"
    bin_ = venv / "bin"
    started = time.monotonic()
    requirements = [str(wheel), *TEST_TOOLS]
    if kind == "floor":
        requirements += [f"{name}=={floor}" for name, floor in declared_floors().items()]
    ok = run([python, "-m", "venv", venv], log) and run(
        [bin_ / "python", "-m", "pip", "install", "--prefer-binary", *requirements], log
    )
    if not ok:
        return {**row, "result": "install failed", "seconds": time.monotonic() - started}
    # Outside the checkout, so that the installed package is the one imported.
    report = output([bin_ / "python", "-c", REPORT_VERSIONS.format(names=SHOWN)], cwd=root)
    if report is None:
        return {**row, "result": "import failed", "seconds": time.monotonic() - started}
    fields = report.split()
    row.update(zip(["python_full", *SHOWN], fields))
    if not fields[-1].startswith(str(venv)):
        return {**row, "result": f"imported {fields[-1]}, not the installed package"}
    # `pytest` (not `python -m pytest`) keeps the checkout off sys.path: the
    # tests import the installed keras_elmo; conftest puts tests/ on the path.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    tests_ok = run(
        [bin_ / "pytest", "-q", "-p", "no:cacheprovider", *CORE_TESTS], log, cwd=REPO, env=env
    )
    row["tests"] = pytest_summary(log)
    text = root / "in.txt"
    text.write_text("\n".join(LINES) + "\n")
    out = root / "out.hdf5"
    embed_ok = run(
        [
            bin_ / "keras-elmo",
            "embed",
            text,
            out,
            "--options-file",
            model / "options.json",
            "--weight-file",
            model / "weights.hdf5",
        ],
        log,
        cwd=root,
        env=env,
    )
    if embed_ok:
        compare = [bin_ / "python", "-c", COMPARE.format(n=len(LINES)), out]
        if reference.get("path"):
            compare.append(reference["path"])
        shapes_diff = output(compare, cwd=root)
        if shapes_diff is None:
            embed_ok = False
        else:
            row["embed"] = shapes_diff.rsplit(" ", 1)[-1]
            if not reference.get("path"):
                reference["path"] = str(work / "reference.hdf5")
                reference["set"] = f"{python_version} {kind}"
                shutil.copy(out, reference["path"])
                row["embed"] = "reference"
            elif float(row["embed"]) > 1e-5:
                embed_ok = False
    row.setdefault("embed", "ok" if embed_ok else "failed")
    row["result"] = "pass" if tests_ok and embed_ok else "FAIL"
    row["seconds"] = time.monotonic() - started
    return row


def markdown(rows, reference):
    header = ["Python", "set", "TensorFlow", "Keras", "numpy", "h5py", "tqdm", "core tests"]
    header += ["embed (max abs diff)", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.get("python_full", r["python"]), r["set"]]
        cells += [r.get(name, "-") for name in SHOWN]
        cells += [r.get("tests", "-"), r.get("embed", "-"), r["result"]]
        lines.append("| " + " | ".join(cells) + " |")
    if reference.get("set"):
        lines.append("")
        lines.append(f"Vectors compared with those of Python {reference['set']}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--set",
        action="append",
        dest="sets",
        help="PYTHON:floor or PYTHON:newest (repeatable; default: the whole matrix)",
    )
    parser.add_argument("--work", help="directory for the venvs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep each venv after its set")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    sets = [s.split(":") for s in (args.sets or DEFAULT_SETS)]
    for s in sets:
        if len(s) != 2 or s[1] not in ("floor", "newest"):
            parser.error(f"bad --set {':'.join(s)!r}; use PYTHON:floor or PYTHON:newest")
    models = sorted(REPO.glob("**/elmo-small-en/options.json"))
    models = [
        m.parent for m in models if ".venv" not in m.parts and (m.parent / "weights.hdf5").exists()
    ]
    if not models:
        raise SystemExit("check_versions: the shipped elmo-small-en model is not in this checkout")
    work = Path(args.work or tempfile.mkdtemp(prefix="keras-elmo-versions-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"check_versions: floors {declared_floors()}; work dir {work}", flush=True)
    wheel_dir = work / "wheel"
    shutil.rmtree(wheel_dir, ignore_errors=True)
    if not run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheel_dir, REPO],
        work / "wheel.log",
    ):
        raise SystemExit(f"check_versions: building the wheel failed; see {work / 'wheel.log'}")
    wheel = next(wheel_dir.glob("keras_elmo-*.whl"))
    rows, reference = [], {}
    for python_version, kind in sets:
        row = check_set(python_version, kind, wheel, work, models[0], reference)
        rows.append(row)
        print(
            f"{python_version} {kind}: {row['result']} ({row.get('tests', '-')}; embed "
            f"{row.get('embed', '-')}; {row.get('seconds', 0):.0f} s; log {row.get('log', '-')})",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(work / f"py{python_version}-{kind}" / "venv", ignore_errors=True)
    table = markdown(rows, reference)
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0 if all(r["result"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
