"""examples/corpora.py, the repository's corpora tooling (not in the package):
sentence splitting, the readers, the held-out rules, the splits and their script.

The module is imported from the clone's examples/ folder, as the examples
and benchmarks import it.
"""

import importlib
import os
import subprocess
import sys

import pytest
from support.paths import REPO

sys.path.insert(0, str(REPO / "examples"))
import corpora  # noqa: E402


def _write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


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


def test_data_root_follows_the_variable_and_names_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_ELMO_DATA", str(tmp_path))
    assert corpora.data_root() == tmp_path
    assert corpora.data_root(tmp_path / "other", must_exist=False) == tmp_path / "other"
    monkeypatch.setenv("KERAS_ELMO_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="absent.*KERAS_ELMO_DATA"):
        corpora.data_root()
    monkeypatch.delenv("KERAS_ELMO_DATA")
    assert corpora.data_root(must_exist=False) == REPO.parent / "shared" / "data"


def test_the_module_is_not_in_the_package():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("keras_elmo.training.corpora")
    assert not (REPO / "keras_elmo" / "training" / "corpora.py").exists()


@pytest.mark.slow
def test_the_splits_script_writes_the_splits_or_says_what_is_missing(tmp_path):
    (tmp_path / "data").mkdir()
    _shared_data_tree(tmp_path / "data")
    script = str(REPO / "examples" / "corpora.py")
    env = dict(os.environ, KERAS_ELMO_DATA=str(tmp_path / "none"))
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, script, *args], capture_output=True, text=True, env=env, timeout=120
    )
    done = run(str(tmp_path / "data"), str(tmp_path / "splits"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"heldout_brown: 50 sentences, 100 tokens -> {tmp_path / 'splits' / 'heldout_brown.txt'}",
        f"heldout_sotu: 12 sentences, 24 tokens -> {tmp_path / 'splits' / 'heldout_sotu.txt'}",
    ]
    assert len(list((tmp_path / "splits").glob("train-*.txt"))) == 16
    missing = run(str(tmp_path / "none"), str(tmp_path / "splits2"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"corpora.py: data folder not found: {tmp_path / 'none'} "
        "(pass a path or set $KERAS_ELMO_DATA)."
    ]


def test_the_recipe_counts_the_train_shards_with_a_plain_build_vocab(tmp_path, capsys):
    from keras_elmo import cli

    (tmp_path / "data").mkdir()
    _shared_data_tree(tmp_path / "data")
    corpora.write_splits(str(tmp_path / "data"), str(tmp_path / "splits"))
    vocab = tmp_path / "vocab.txt"
    shards = str(tmp_path / "splits" / "train-*.txt")
    assert cli.main(["build-vocab", str(vocab), shards, "--quiet"]) == 0
    # Train split: 450 Brown files "A b", 20 SOTU addresses "Speech .", 140 chapters "Text ."
    assert vocab.read_text(encoding="utf-8").split() == [
        "<S>",
        "</S>",
        "<UNK>",
        "A",
        "b",
        ".",
        "Text",
        "Speech",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--split-shared-data", "data", "--split-dir", "s"], "unrecognized arguments"),
        ([], "the following arguments are required: files"),
    ],
)
def test_build_vocab_takes_files_only(argv, message, tmp_path, capsys):
    from keras_elmo import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["build-vocab", str(tmp_path / "vocab.txt"), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "vocab.txt").exists()
