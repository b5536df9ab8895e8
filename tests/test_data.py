"""Text-level data: vocabulary, sentence splitting, corpora, tf.data pipeline."""

import ast
import collections

import numpy as np
import pytest
from support.paths import REPO

from keras_elmo.text.characters import batch_to_ids
from keras_elmo.training import corpora, data

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


def test_split_sentences():
    text = (
        "Mr. Smith went to Washington. He met Dr. Jones of the U.S. Senate! "
        'Was it raining? "Yes," said J. F. Kennedy. The end. 3 more '
        "sentences? No."
    )
    assert corpora.split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He met Dr. Jones of the U.S. Senate!",
        "Was it raining?",
        '"Yes," said J. F. Kennedy.',
        "The end.",
        "3 more sentences?",
        "No.",
    ]


def test_split_sentences_quotes_and_lowercase():
    text = "He said \u201cstop.\u201d Then he left. it was late. Etc. and so on"
    assert corpora.split_sentences(text) == [
        'He said "stop."',
        "Then he left. it was late.",
        "Etc. and so on",
    ]


def test_tokenize_prose():
    assert corpora.tokenize_prose("America\u2019s future isn't \u201cbright\u201d, Mr. Smith.") == [
        "America",
        "'s",
        "future",
        "is",
        "n't",
        '"',
        "bright",
        '"',
        ",",
        "Mr.",
        "Smith",
        ".",
    ]
    # The project tokenizer always splits the sentence-final period (PTB keeps "U.S." whole).
    assert corpora.tokenize_prose("He came from the U.S.") == [
        "He",
        "came",
        "from",
        "the",
        "U.S",
        ".",
    ]


def test_read_prose_paragraphs(tmp_path):
    path = _write(tmp_path, "First line of a\nparagraph. Second one!\n\n\nNew paragraph here.\n")
    assert list(corpora.read_prose(path)) == [
        ["First", "line", "of", "a", "paragraph", "."],
        ["Second", "one", "!"],
        ["New", "paragraph", "here", "."],
    ]


def test_brown_reading_and_tags(tmp_path):
    path = _write(
        tmp_path, "\n\tThe/at Fulton/np-tl jury/nn said/vbd ./.\n\n\tA/at b/c/nn\n", "ca01"
    )
    assert list(corpora.read_brown(path)) == [["The", "Fulton", "jury", "said", "."], ["A", "b/c"]]
    assert [
        corpora.simplify_brown_tag(t)
        for t in ("nn-tl", "vbd", "np$", "fw-nn", ",", "nns", "ppss+md", "jj-hl", "*", "nn-tl-hl")
    ] == ["nn", "vb", "np", "nn", ",", "nn", "pp", "jj", "*", "nn"]
    with pytest.raises(ValueError, match="word/tag"):
        corpora.split_brown_token("notag")


def _shared_data_tree(root):
    """A synthetic tree shaped like shared/data: 500 Brown files, SOTU years, chapters."""
    brown = root / "brown"
    brown.mkdir()
    for letter in "abcdefghjklmnpr":
        for i in range(1, 35):
            (brown / f"c{letter}{i:02d}").write_text("A/at b/nn\n", encoding="utf-8")
    (brown / "cats.txt").write_text("ca01 news\n", encoding="utf-8")
    (brown / "README").write_text("not a corpus file\n", encoding="utf-8")
    names = sorted(p.name for p in brown.iterdir() if p.name not in ("cats.txt", "README"))
    for name in names[500:]:
        (brown / name).unlink()
    (root / "sotu").mkdir()
    for year in range(1990, 2022):
        (root / "sotu" / f"{year}_x.txt").write_text("Speech.\n", encoding="utf-8")
    (root / "moby-dick").mkdir()
    for i in range(1, 141):
        (root / "moby-dick" / f"chapter_{i}.txt").write_text("Text.\n", encoding="utf-8")
    return root


def test_heldout_rules(tmp_path):
    data_dir = _shared_data_tree(tmp_path)
    train, held = corpora.brown_files(data_dir / "brown")
    assert len(train) == 450 and len(held) == 50
    assert [p.rsplit("/", 1)[-1] for p in held[:3]] == ["ca10", "ca20", "ca30"]
    assert not set(train) & set(held)
    s_train, s_held = corpora.sotu_files(data_dir / "sotu")
    years = [int(p.rsplit("/", 1)[-1][:4]) for p in s_held]
    assert min(years) == corpora.SOTU_HELDOUT_FROM_YEAR and len(s_held) >= 10
    assert all(int(p.rsplit("/", 1)[-1][:4]) < 2010 for p in s_train)
    assert len(corpora.moby_dick_files(data_dir / "moby-dick")) >= 135


def test_write_splits_small(tmp_path, monkeypatch):
    # A miniature shared/data tree.
    (tmp_path / "brown").mkdir()
    for i in range(20):
        (tmp_path / "brown" / f"ca{i + 1:02d}").write_text(f"Word{i}/nn ./.\n", encoding="utf-8")
    (tmp_path / "sotu").mkdir()
    (tmp_path / "sotu" / "1999_x.txt").write_text("Old speech. Very old.\n", encoding="utf-8")
    (tmp_path / "sotu" / "2015_y.txt").write_text("New speech.\n", encoding="utf-8")
    (tmp_path / "moby-dick").mkdir()
    (tmp_path / "moby-dick" / "chapter_1.txt").write_text("Call me Ishmael.\n", encoding="utf-8")
    out = tmp_path / "splits"
    result = corpora.write_splits(str(tmp_path), str(out), train_shards=3)
    assert result["train"][1] == 18 + 2 + 1
    assert result["heldout_brown"][1:] == (2, 4)
    assert result["heldout_sotu"][1:] == (1, 3)
    held = (out / "heldout_brown.txt").read_text(encoding="utf-8").split("\n")
    assert held[:2] == ["Word9 .", "Word19 ."]
    train_text = "".join((out / f"train-{k:05d}.txt").read_text(encoding="utf-8") for k in range(3))
    assert "Word9 " not in train_text and "New speech" not in train_text
    assert "Call me Ishmael ." in train_text


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
