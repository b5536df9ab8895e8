"""One definition of whitespace: the graph tokenizers, the CLI's line reader and
the Python tokenizer split the same strings the same way.

The definition is Python's `str.isspace()` (what `str.split()` splits on):
Unicode White_Space plus U+001C..U+001F. The expectations below are written
out by hand; Python's own `str.split()` is the reference for the code point
table.
"""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_elmo import ElmoTokenizer
from keras_elmo.jobs import reader
from keras_elmo.text import tokenization

NBSP, EM_SPACE, IDEOGRAPHIC, NEL, NNBSP = "\u00a0", "\u2003", "\u3000", "\u0085", "\u202f"
# Not whitespace: zero-width space, word joiner, BOM, Mongolian vowel separator.
NOT_SPACE = "\u200b\u2060\ufeff\u180e"

CASES = [
    ("a b", ["a", "b"]),
    (f"a{NBSP}b", ["a", "b"]),
    (f"a{EM_SPACE}b{IDEOGRAPHIC}c", ["a", "b", "c"]),
    (f"{NBSP} x \t{NEL}y{NNBSP}", ["x", "y"]),
    ("a\x1cb\x1fc\x0bd\x0ce\rf", ["a", "b", "c", "d", "e", "f"]),
    (f"a{NOT_SPACE}b", [f"a{NOT_SPACE}b"]),
    ("a\u2028b\u2029c\u1680d\u205fe", ["a", "b", "c", "d", "e"]),
    (f"{NBSP}{EM_SPACE}", []),
    ("", []),
    ("日本語 テキスト", ["日本語", "テキスト"]),
]


def test_the_table_is_pythons_whitespace():
    table = {c for lo, hi in tokenization.WHITESPACE_RANGES for c in range(lo, hi + 1)}
    python = {c for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert table == python


@pytest.mark.parametrize("text,expected", CASES)
def test_python_tokenizer(text, expected):
    assert tokenization.tokenize_python(text) == expected
    assert text.split() == expected  # the reference the others must equal


def test_graph_tokenizers_split_the_same():
    texts = [text for text, _ in CASES]
    want = [expected for _, expected in CASES]
    ragged = tokenization.tokenize_ragged(tf.constant(texts)).to_list()
    assert [[t.decode() for t in row] for row in ragged] == want
    dense = tokenization.tokenize(tf.constant(texts)).numpy()
    for row, expected in zip(dense, want):
        tokens = [t.decode() for t in row]
        assert tokens[: len(expected)] == expected
        assert set(tokens[len(expected) :]) <= {""}
    layer = ElmoTokenizer()(tf.constant(texts)).numpy()
    np.testing.assert_array_equal(layer, dense)


def test_punctuation_mode_uses_the_same_whitespace():
    text = f"Don't{NBSP}stop,{EM_SPACE}now!\x1cok."
    want = ["Do", "n't", "stop", ",", "now", "!", "ok", "."]
    assert tokenization.tokenize_python(text, "punctuation") == want
    got = tokenization.tokenize_ragged(tf.constant([text]), "punctuation").to_list()[0]
    assert [t.decode() for t in got] == want


def test_punctuation_mode_python_and_graph_agree_beyond_ascii():
    # RE2's \w and \b are ASCII-only; the Python rules use re.ASCII to match.
    texts = ["café's naïve", "l'été n'était pas", "über's", "İstanbul'S don't"]
    for text in texts:
        graph = tokenization.tokenize_ragged(tf.constant([text]), "punctuation").to_list()[0]
        assert [t.decode() for t in graph] == tokenization.tokenize_python(text, "punctuation")


def test_tf_text_modes_use_the_same_whitespace():
    pytest.importorskip("tensorflow_text")
    text = f"a{NBSP}b\x1cc{EM_SPACE}d"
    got = ElmoTokenizer(mode="tf_text")(tf.constant([text])).numpy()[0]
    assert [t.decode() for t in got] == ["a", "b", "c", "d"]


def test_cli_line_reader(tmp_path):
    # Lines without the characters that may also end a line (CR, NEL, U+2028,
    # U+001C..U+001E, VT, FF): how lines are cut is the reader's own rule.
    line_breaks = set("\r\x85\u2028\u2029\x1c\x1d\x1e\x0b\x0c")
    cases = [(t, e) for t, e in CASES if e and not line_breaks & set(t)]
    assert len(cases) >= 5
    path = tmp_path / "in.txt"
    path.write_bytes("\n".join(text for text, _ in cases).encode() + b"\n")
    got = [tokens for _, tokens in reader.read_sentences(str(path))]
    assert got == [expected for _, expected in cases]
