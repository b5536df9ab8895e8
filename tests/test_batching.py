"""Token-budget batching (`keras_elmo.jobs.batching`) and the bounds around it.

Properties of the plan itself (every line once, order restorable, budget
kept, batches as full as the budget allows), then what `keras-elmo embed`
does with it: one long line among short ones never pads the others, the
vectors equal the old fixed batching's, and a line over the tokens-per-line
bound is refused with one line naming it.
"""

import doctest

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tiny_model import random_tiny_layer
from support.tolerance import assert_same_up_to_path

from keras_elmo import limits
from keras_elmo.cli import main
from keras_elmo.errors import InputError
from keras_elmo.jobs import batching, output, reader
from keras_elmo.jobs import embed_file as embed_lib

lengths_st = st.lists(st.integers(0, 60), max_size=80)
budget_st = st.integers(1, 200)
window_st = st.one_of(st.none(), st.integers(1, 30))
rows_st = st.one_of(st.none(), st.integers(1, 12))


def windows_of(n, window):
    """The index ranges of the windows (one when `window` is None)."""
    size = n if window is None else window
    return [range(start, min(start + size, n)) for start in range(0, n, max(size, 1))]


@settings(max_examples=300, deadline=None)
@given(lengths_st, budget_st, window_st, rows_st)
def test_plan_properties(lengths, budget, window, max_rows):
    batches = batching.token_budget_batches(lengths, budget, window=window, max_rows=max_rows)
    flat = [index for batch in batches for index in batch]
    # Every line exactly once, no empty batch.
    assert sorted(flat) == list(range(len(lengths)))
    assert all(batches)
    width = [max(1, n) for n in lengths]
    for batch in batches:
        positions = len(batch) * max(width[i] for i in batch)
        # The budget holds, unless a line longer than it runs alone.
        assert positions <= budget or (len(batch) == 1 and width[batch[0]] > budget)
        assert max_rows is None or len(batch) <= max_rows
        assert batching.padded_positions([lengths[i] for i in batch]) == positions
    # Batches never span windows; inside one, they are its lines sorted by
    # (length, index); each batch but a window's last is full: the next line
    # would pass the budget or the row cap.
    position = 0
    for span in windows_of(len(lengths), window):
        expected = sorted(span, key=lambda i: (lengths[i], i))
        taken = []
        while len(taken) < len(expected):
            batch = batches[position]
            position += 1
            taken += batch
            following = expected[len(taken) : len(taken) + 1]
            if following:
                nxt = following[0]
                grown = (len(batch) + 1) * width[nxt]
                assert grown > budget or (max_rows is not None and len(batch) == max_rows)
        assert taken == expected
    assert position == len(batches)
    # Results come back in input order.
    results = [[f"line {i}" for i in batch] for batch in batches]
    assert batching.in_input_order(batches, results) == [f"line {i}" for i in range(len(lengths))]


@settings(max_examples=100, deadline=None)
@given(lengths_st, budget_st, window_st, rows_st)
def test_the_stream_version_is_the_same_plan(lengths, budget, window, max_rows):
    items = [(i, ["w"] * n) for i, n in enumerate(lengths)]
    streamed = batching.iter_token_budget_batches(
        iter(items), lambda item: len(item[1]), budget, window=window, max_rows=max_rows
    )
    plan = batching.token_budget_batches(lengths, budget, window=window, max_rows=max_rows)
    assert [[i for i, _ in batch] for batch in streamed] == plan


def test_no_budget_is_the_old_fixed_batching():
    lengths = [7, 3, 3, 9, 1, 2, 8]
    assert batching.token_budget_batches(lengths, None, window=4, max_rows=2) == [
        [1, 2],
        [0, 3],
        [4, 5],
        [6],
    ]


def test_the_docstring_examples():
    results = doctest.testmod(batching)
    assert results.attempted == 2 and results.failed == 0


def test_bad_arguments_and_results():
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(InputError, match="batch tokens must be a positive integer"):
            batching.token_budget_batches([1, 2], bad)
        with pytest.raises(InputError, match="window must be a positive integer"):
            batching.token_budget_batches([1, 2], 8, window=bad)
    with pytest.raises(ValueError, match="2 indices has 1 results"):
        batching.in_input_order([[0, 1]], [["a"]])
    with pytest.raises(ValueError, match="in two batches"):
        batching.in_input_order([[0], [0]], [["a"], ["b"]])


# ---------------------------------------------------------------- the embed job


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tolerance's random tiny model, as an options + weights pair."""
    paths = [str(tmp_path_factory.mktemp("tiny") / name) for name in ("o.json", "w.hdf5")]
    random_tiny_layer(seed=11).save_original(*paths)
    return paths


def long_line_file(path, long_tokens, short_lines=63, seed=3):
    """`short_lines` lines of 3-12 tokens with one line of `long_tokens` tokens among them."""
    rng = np.random.default_rng(seed)
    words = "the a of cat dog sat on mat ran far away big small red".split()
    lines = [" ".join(rng.choice(words, rng.integers(3, 13))) for _ in range(short_lines)]
    lines.insert(short_lines // 2, " ".join(f"w{k % 997}" for k in range(long_tokens)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def read_vectors(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][...] for name in f if name != "sentence_to_index"}


def test_one_long_line_runs_alone(tiny_model, tmp_path, monkeypatch):
    """The issue's file, scaled down: a 3,000-token line among 63 short lines.

    With a fixed batch of 64 lines every call was padded to the long line
    (64 x 3,000 token positions); with the token budget no call holds more
    than the budget except the long line, alone."""
    src = tmp_path / "in.txt"
    lines = long_line_file(src, 3000)
    calls = []
    embed_batch = output.embed_batch

    def recording(run, token_lists, layers):
        calls.append([len(tokens) for tokens in token_lists])
        return embed_batch(run, token_lists, layers)

    monkeypatch.setattr(output, "embed_batch", recording)
    options_file, weight_file = tiny_model
    total = embed_lib.embed_file(src, tmp_path / "out.hdf5", options_file, weight_file)
    assert total == len(lines)
    assert sorted(n for call in calls for n in call) == sorted(len(s.split()) for s in lines)
    budget = batching.BATCH_TOKENS
    for call in calls:
        assert len(call) * max(call) <= budget or call == [3000]
    assert [3000] in calls
    assert max(len(call) * max(call) for call in calls if call != [3000]) <= 64 * 12


def test_token_budget_output_equals_the_fixed_batching(tiny_model, tmp_path):
    """The same vectors (path tolerance) as `batch_tokens=None`, the old fixed batches."""
    src = tmp_path / "in.txt"
    long_line_file(src, 300, short_lines=40)
    options_file, weight_file = tiny_model
    fixed, budget = tmp_path / "fixed.hdf5", tmp_path / "budget.hdf5"
    embed_lib.embed_file(src, fixed, options_file, weight_file, batch_size=16, batch_tokens=None)
    embed_lib.embed_file(src, budget, options_file, weight_file, batch_size=16, batch_tokens=40)
    want, got = read_vectors(fixed), read_vectors(budget)
    assert sorted(got) == sorted(want) == sorted(str(i) for i in range(41))
    for name, value in want.items():
        assert got[name].shape == value.shape
        assert_same_up_to_path(got[name], value)


def test_a_line_over_the_token_bound_is_refused(tiny_model, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(
        "a short line\n" + " ".join(["w"] * (limits.MAX_TOKENS_PER_LINE + 1)) + "\nend\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"line 2 has 32769 tokens, over the limit of 32768"):
        list(reader.read_sentences(src))
    options_file, weight_file = tiny_model
    out = tmp_path / "out.hdf5"
    argv = ["embed", str(src), str(out), "--options-file", options_file]
    code = main([*argv, "--weight-file", weight_file, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert f"{src}: line 2 has 32769 tokens" in err
    assert not out.exists()
    # At the bound it is read.
    src.write_text(" ".join(["w"] * limits.MAX_TOKENS_PER_LINE) + "\n", encoding="utf-8")
    assert len(list(reader.read_sentences(src))) == 1


def test_cli_batch_tokens(tiny_model, tmp_path, capsys, monkeypatch):
    seen = {}

    def fake(input_file, output_file, **kwargs):
        seen.update(kwargs)
        return 1

    monkeypatch.setattr(embed_lib, "embed_file", fake)
    src = tmp_path / "in.txt"
    src.write_text("a b\n", encoding="utf-8")
    options_file, weight_file = tiny_model
    argv = ["embed", str(src), str(tmp_path / "o.hdf5"), "--options-file", options_file]
    argv += ["--weight-file", weight_file, "--quiet"]
    assert main(argv) == 0
    assert seen["batch_tokens"] == batching.BATCH_TOKENS
    assert main([*argv, "--batch-tokens", "none"]) == 0
    assert seen["batch_tokens"] is None
    assert main([*argv, "--batch-tokens", "100"]) == 0
    assert seen["batch_tokens"] == 100
    with pytest.raises(SystemExit):
        main([*argv, "--batch-tokens", "0"])
    assert "positive integer or none" in capsys.readouterr().err
