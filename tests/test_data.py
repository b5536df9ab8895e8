"""Text-level data: vocabulary, tf.data pipeline (the corpora: test_corpora.py)."""

import ast
import collections

import numpy as np
import pytest
from support.paths import REPO

from keras_elmo.errors import InputError
from keras_elmo.text.characters import batch_to_ids
from keras_elmo.training import data

CORPUS = """the cat sat on the mat .
the dog sat .
a cat and a dog .
"""


def _write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_module_order_data_imports_no_model_code():
    tree = ast.parse((REPO / "keras_elmo" / "training" / "data.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    for banned in ("keras_elmo.layers", "keras_elmo.training.trainer"):
        assert not any(name.startswith(banned) for name in imported), imported


def test_count_tokens_and_vocab(tmp_path):
    path = _write(tmp_path, CORPUS)
    counts = data.count_tokens(path)
    assert counts == collections.Counter(
        {"the": 3, "cat": 2, "sat": 2, ".": 3, "dog": 2, "a": 2, "on": 1, "mat": 1, "and": 1}
    )
    vocab = data.build_vocab(counts)
    assert vocab[:3] == ["<S>", "</S>", "<UNK>"]
    # by falling count, ties by the string
    assert vocab[3:] == [".", "the", "a", "cat", "dog", "sat", "and", "mat", "on"]
    assert data.build_vocab(counts, min_count=2) == [
        "<S>",
        "</S>",
        "<UNK>",
        ".",
        "the",
        "a",
        "cat",
        "dog",
        "sat",
    ]
    assert data.build_vocab(counts, max_size=5) == ["<S>", "</S>", "<UNK>", ".", "the"]
    out = tmp_path / "vocab.txt"
    data.write_vocab(vocab, out)
    assert data.load_vocab(out) == vocab


def test_vocab_special_tokens_in_text_are_not_duplicated():
    counts = collections.Counter({"<UNK>": 10, "x": 3, "<S>": 1})
    assert data.build_vocab(counts) == ["<S>", "</S>", "<UNK>", "x"]


def test_vocab_errors(tmp_path):
    with pytest.raises(ValueError, match="min_count"):
        data.build_vocab(collections.Counter(), min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        data.build_vocab(collections.Counter(), max_size=2)
    bad = _write(tmp_path, "the\n<S>\n", "bad_vocab.txt")
    with pytest.raises(ValueError, match="must start with <S>"):
        data.load_vocab(bad)


def test_dataset_matches_numpy(tmp_path):
    lines = ["the cat sat on the mat .", "the dog sat .", "a zebra and a dog .", "x"]
    path = _write(tmp_path, "\n".join(lines) + "\n\n")
    vocab = data.build_vocab(data.count_tokens(path))
    vocab.remove("zebra")
    ds = data.make_dataset(path, vocab, batch_size=4, buckets=[])
    batches = list(ds)
    assert len(batches) == 1
    got = batches[0]
    want_chars, want_words = data.batch_numpy([s.split() for s in lines], vocab)
    assert got["char_ids"].shape == (4, 9, 50) and got["word_ids"].shape == (4, 9)
    np.testing.assert_array_equal(got["char_ids"].numpy(), want_chars)
    np.testing.assert_array_equal(got["word_ids"].numpy(), want_words)
    words = got["word_ids"].numpy()
    assert words[0, 0] == data.BOS_ID and words[0, 8] == data.EOS_ID
    assert words[2, 2] == data.UNK_ID  # zebra
    assert words[1, 5] == data.EOS_ID and words[1, 6:].tolist() == [-1] * 3
    # the boundary tokens get the boundary char ids, as batch_to_ids gives them
    np.testing.assert_array_equal(got["char_ids"][0, 0].numpy(), batch_to_ids([["<S>"]])[0, 0])


def test_dataset_cuts_long_lines_and_buckets(tmp_path):
    tokens = [f"w{i}" for i in range(12)]
    path = _write(tmp_path, " ".join(tokens) + "\na b\nc d\n")
    vocab = data.build_vocab(data.count_tokens(path))
    ds = data.make_dataset(path, vocab, batch_size=2, max_len=5, buckets=[4, 10])
    shapes = sorted(tuple(b["word_ids"].shape) for b in ds)
    # pieces of 5, 5, 2 tokens (+2 boundaries) and two 2-token sentences; 4 and 7
    # long, in the buckets [4, 10) and [4, 10) -> batches of 2 by arrival order
    assert shapes == [(1, 4), (2, 4), (2, 7)]
    seen = sorted(int(w) for b in ds for w in b["word_ids"].numpy().ravel() if w > data.UNK_ID)
    assert len(seen) == 16


def test_dataset_deterministic_and_skip(tmp_path):
    lines = [" ".join(f"t{(i * 7 + j) % 23}" for j in range(1 + i % 9)) for i in range(60)]
    paths = [_write(tmp_path, "\n".join(lines[k::3]) + "\n", f"shard{k}.txt") for k in range(3)]
    vocab = data.build_vocab(data.count_tokens(paths))
    kwargs = dict(batch_size=4, shuffle_buffer=20, seed=3, repeat=True)
    a = [b["word_ids"].numpy() for b in data.make_dataset(paths, vocab, **kwargs).take(10)]
    b = [
        b["word_ids"].numpy()
        for b in data.make_dataset(paths, vocab, skip_batches=6, **kwargs).take(4)
    ]
    for x, y in zip(a[6:], b):
        np.testing.assert_array_equal(x, y)


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.make_dataset(str(tmp_path / "missing.txt"), ["<S>", "</S>", "<UNK>"], 2)
    path = _write(tmp_path, "a b\n")
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(path, ["<S>", "</S>", "<UNK>"], 0)


# One whitespace (keras_elmo.text.tokenization): NBSP, EM SPACE, IDEOGRAPHIC
# SPACE, NEL, U+001C; ZWSP and BOM are not whitespace. Lines end at \n and a
# CR is dropped (tf.data.TextLineDataset's rule, which the Python side follows).
WHITESPACE_LINES = [
    ("the\u00a0cat sat", ["the", "cat", "sat"]),
    ("a\u2003dog\u3000ran\x1cfar", ["a", "dog", "ran", "far"]),
    ("\u0085the dog\rs\r\rat\u202f", ["the", "dogsat"]),
    ("zero\u200bwidth \ufeffbom", ["zero\u200bwidth", "\ufeffbom"]),
    ("\u00a0\u2003", []),
]


def test_training_splits_lines_as_build_vocab_counts_them(tmp_path):
    path = tmp_path / "ws.txt"
    path.write_bytes("\n".join(text for text, _ in WHITESPACE_LINES).encode() + b"\r\n")
    want = [tokens for _, tokens in WHITESPACE_LINES if tokens]
    assert list(data.read_tokenized(str(path))) == want
    vocab = data.build_vocab(data.count_tokens(str(path)))
    assert "cat" in vocab and "the\u00a0cat" not in vocab
    # What make_dataset trains on: the same sentences, every token in the vocabulary.
    (batch,) = list(data.make_dataset(str(path), vocab, batch_size=8, buckets=[]))
    got = [
        [vocab[i] for i in row if i >= 0][1:-1]  # without <S> and </S>
        for row in batch["word_ids"].numpy()
    ]
    assert got == want
    assert data.UNK_ID not in batch["word_ids"].numpy()


def test_a_training_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"good line\ncaf\xe9 au lait\n")
    with pytest.raises(InputError, match=r"latin1.txt, line 2: not valid UTF-8 \(byte 4"):
        data.count_tokens(str(path))


HEAD = b"<S>\n</S>\n<UNK>\n"


@pytest.mark.parametrize(
    "content,error",
    [
        (
            b"<S>\n</S>\nthe\n",
            r"line 3: a biLM vocabulary must start with <S>, </S>, <UNK> .*'the'",
        ),
        (b"</S>\n<S>\n<UNK>\n", r"line 1: a biLM vocabulary must start with <S>"),
        (b"<S>\n</S>\n", r"must start with <S>, </S>, <UNK> .*the file has 2 lines"),
        (b"", r"the file has 0 lines"),
        (HEAD + b"cat\ndog\ncat\n", r"line 6: 'cat' is a duplicate of line 4"),
        (HEAD + b"<UNK>\n", r"line 4: '<UNK>' is a duplicate of line 3"),
        (HEAD + b"cat\n\ndog\n", r"line 5: an empty line"),
        (HEAD + b"cat\n\n", r"line 5: an empty line"),
        (HEAD + b"caf\xe9\n", r"line 4: not valid UTF-8 \(byte 4\)"),
        (HEAD + b"ice cream\n", r"line 4: the entry 'ice cream' holds whitespace"),
        (HEAD + "new\u00a0york\n".encode(), r"line 4: the entry 'new\\xa0york' holds whitespace"),
        (HEAD + b"cat \n", r"line 4: the entry 'cat ' holds whitespace"),
        (HEAD + b"\t\n", r"line 4: the entry '\\t' holds whitespace"),
        ("\ufeff<S>\n</S>\n<UNK>\n".encode(), r"line 1: .* line 1 is '\\ufeff<S>'"),
        (HEAD + b"x" * 500 + b" y\n", r"line 4: the entry 'x{40}'\.\.\. holds whitespace"),
    ],
)
def test_a_bad_vocabulary_is_one_error_naming_the_file_and_line(tmp_path, content, error):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=error) as err:
        data.load_vocab(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}") and "\n" not in message and len(message) < 300


def test_a_vocabulary_with_crlf_lines_or_no_final_newline_loads(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"<S>\r\n</S>\r\n<UNK>\r\ncat\r\ndog")
    assert data.load_vocab(str(path)) == ["<S>", "</S>", "<UNK>", "cat", "dog"]
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        data.load_vocab(str(tmp_path / "missing.txt"))


def test_the_commands_report_bad_text_and_vocabularies_in_one_line(tmp_path, capsys):
    from keras_elmo.cli import main

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"good line\ncaf\xe9 au lait\n")
    vocab = tmp_path / "vocab.txt"
    assert main(["build-vocab", str(vocab), str(latin1)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"keras-elmo build-vocab: error: {latin1}, line 2: not valid UTF-8 "
        "(byte 4 of the line); training text must be UTF-8."
    ]
    assert not vocab.exists()
    assert main(["build-vocab", str(tmp_path), str(latin1)]) == 2
    assert "is a directory" in capsys.readouterr().err
    vocab.write_bytes(HEAD + b"cat\ncat\n")
    good = _write(tmp_path, CORPUS)
    argv = ["train", good, "--vocab", str(vocab), "--output-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"keras-elmo train: error: {vocab}, line 5: 'cat' is a duplicate of line 4."]
