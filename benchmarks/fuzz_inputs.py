"""Time-bounded fuzz run of `keras-elmo embed`'s line reader and the options loader.

Each target gets random inputs from hypothesis (its generators plus its
shrinking of any failure) for a fixed share of the wall time; the script
reports how many inputs each target tried and every failure it found.

What counts as a failure:
- line reader (keras_elmo.jobs.reader): on random bytes, in random
  read block sizes, `iter_lines` differs from a reference split (the three
  line terminators normalised to \\n, BOM dropped), or `sentences_from_stream`
  yields tokens other than `line.split()` of the decoded line, or raises
  anything but InputError, or an InputError without the line number;
- options loader (keras_elmo.options): `load_options` on random bytes, on
  random JSON, and on mutations of a valid options dict (any key replaced by
  random JSON) raises anything but InputError, or returns options that are not
  a fixed point of `validate_options` or that break SIZE_LIMITS.

Usage: python benchmarks/fuzz_inputs.py [--seconds 120] [--output FILE.md]
"""

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_elmo import options as options_lib
from keras_elmo.errors import InputError
from keras_elmo.jobs import reader

BOM = b"\xef\xbb\xbf"

# Bytes biased towards what breaks line readers: terminators, BOM pieces,
# whitespace (ASCII and Unicode), invalid UTF-8 and multi-byte characters.
_PIECES = [
    b"\n",
    b"\r",
    b"\r\n",
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x85",
    b"\xc2\x85",
    b"\xc2\xa0",
    b"\xe2\x80\xa8",
    b"\xe3\x80\x80",
    BOM,
    b"\xef\xbb",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
    b"\x00",
    b"word",
    b"caf\xc3\xa9",
]
line_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=60).map(b"".join),
)


def reference_lines(content):
    body = content[len(BOM) :] if content.startswith(BOM) else content
    lines = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def check_line_reader(content, block_size):
    got = list(reader.iter_lines(io.BytesIO(content), block_size=block_size))
    want = reference_lines(content)
    if got != want:
        raise AssertionError(f"iter_lines gave {got!r}, reference {want!r}")
    try:
        sentences = list(reader.sentences_from_stream(io.BytesIO(content), "fuzz"))
    except InputError as err:
        if "fuzz: line " not in str(err):
            raise AssertionError(f"error without a line number: {err}") from None
        return
    if len(sentences) != len(want):
        raise AssertionError("a line went missing")
    for (index, tokens), raw in zip(sentences, want):
        if tokens != raw.decode("utf-8").split() or not tokens:
            raise AssertionError(f"line {index + 1}: tokens {tokens!r} from {raw!r}")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _valid():
    return json.loads(json.dumps(options_lib.published_options("small")))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


VALID_PATHS = [p for p in _paths(_valid()) if p]
mutations = st.lists(
    st.tuples(st.sampled_from(VALID_PATHS), json_values | st.integers(0, 70000)), max_size=4
)


def _mutate(changes):
    options = _valid()
    for path, value in changes:
        node = options
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed this path
    return options


class Loader:
    """load_options through a real file (the way the CLI reads one)."""

    def __init__(self):
        handle, self.path = tempfile.mkstemp(suffix=".json")
        os.close(handle)

    def __call__(self, data):
        with open(self.path, "wb") as f:
            f.write(data)
        try:
            options = options_lib.load_options(self.path)
        except InputError as err:
            if self.path not in str(err):
                raise AssertionError(f"error without the file name: {err}") from None
            return
        again = options_lib.validate_options(options)
        if again != options:
            raise AssertionError(f"validate_options is not a fixed point: {options!r}")
        options_lib.check_sizes(options)


def run_target(name, test, seconds, counts, key):
    """Run `test` (a hypothesis-wrapped function) in rounds until `seconds` pass."""
    end = time.monotonic() + seconds
    failures = []
    rounds = 0
    while time.monotonic() < end and not failures:
        rounds += 1
        try:
            test()
        except Exception:  # a falsified property: hypothesis re-raises it after shrinking
            failures.append(traceback.format_exc(limit=6))
    return {"target": name, "inputs": counts[key], "rounds": rounds, "failures": failures}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="total wall time")
    parser.add_argument("--output", help="write the result table (markdown) here")
    args = parser.parse_args(argv)

    per_round = settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    loader = Loader()
    counts = {"reader": 0, "bytes": 0, "json": 0, "mutated": 0}

    @per_round
    @given(line_bytes, st.integers(1, 64))
    def fuzz_reader(content, block_size):
        counts["reader"] += 1
        check_line_reader(content, block_size)

    @per_round
    @given(st.binary(max_size=300) | line_bytes)
    def fuzz_bytes(data):
        counts["bytes"] += 1
        loader(data)

    @per_round
    @given(json_values)
    def fuzz_json(value):
        counts["json"] += 1
        loader(json.dumps(value).encode())

    @per_round
    @given(mutations)
    def fuzz_mutated(changes):
        counts["mutated"] += 1
        loader(json.dumps(_mutate(changes)).encode())

    targets = [
        ("line reader: iter_lines + sentences_from_stream on random bytes", fuzz_reader, "reader"),
        ("options loader: load_options on random bytes", fuzz_bytes, "bytes"),
        ("options loader: load_options on random JSON", fuzz_json, "json"),
        (
            "options loader: a valid options dict with 0-4 values replaced by random JSON",
            fuzz_mutated,
            "mutated",
        ),
    ]
    started = time.time()
    results = [
        run_target(name, test, args.seconds / len(targets), counts, key)
        for name, test, key in targets
    ]
    elapsed = time.time() - started
    os.remove(loader.path)

    lines = [
        f"Fuzz run: {elapsed:.0f} s wall, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, hypothesis, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| target | inputs tried | failures |",
        "|---|---:|---|",
    ]
    for r in results:
        first = r["failures"][0].strip().splitlines()[-1] if r["failures"] else "none"
        lines.append(f"| {r['target']} | {r['inputs']:,} | {first} |")
    report = "\n".join(lines)
    print(report)
    for r in results:
        for failure in r["failures"]:
            print(f"\n--- {r['target']}\n{failure}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report + "\n")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
