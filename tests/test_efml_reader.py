"""Reading ELMoForManyLangs directories: config lookup, lexicons, options, clear errors."""

import json
import shutil

import pytest
from conftest import REPO

from keras_elmo.checkpoints import efml, preset_catalog

EFML = REPO / "tests" / "fixtures" / "efml"


def test_lexicon_parsing_follows_efml(tmp_path):
    path = tmp_path / "char.dic"
    lines = ["a\t3", "\t7", "\u00a0\t8", "<oov>\t0", "<pad>\t1", "b\t2", "a\t4", "", "ab c\t9"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lexicon = efml.read_lexicon(path, ("<oov>", "<pad>"))
    # An id-only line is U+3000; a whitespace token (NBSP) is stripped away
    # and becomes U+3000 too (the later line wins, as in EFML's dict).
    assert lexicon["\u3000"] == 8
    assert "\u00a0" not in lexicon
    assert lexicon["a"] == 4
    assert lexicon["ab c"] == 9
    assert lexicon["<oov>"] == 0 and lexicon["b"] == 2


def test_lexicon_errors(tmp_path):
    path = tmp_path / "word.dic"
    path.write_text("a\tb\tc\n<oov>\t0\n<pad>\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"word.dic: line 1 is not 'token<TAB>id'"):
        efml.read_lexicon(path, efml.WORD_SPECIALS)
    path.write_text("a\t1\n<oov>\t0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no entry for <pad>"):
        efml.read_lexicon(path, efml.WORD_SPECIALS)
    path.write_bytes(b"\xff\t1\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        efml.read_lexicon(path, efml.WORD_SPECIALS)


def test_fixture_directories_read(tmp_path):
    legacy = efml.read_model(EFML / "model_legacy")
    assert legacy.config_source.endswith("cnn_tiny.json")
    emb = legacy.options["token_embedder"]
    assert legacy.options["kind"] == "efml"
    assert (emb["n_chars"], emb["char_dim"], emb["word_dim"], emb["n_words"]) == (53, 5, 6, 12)
    assert legacy.options["lstm"]["cell_clip"] == 1.0
    assert legacy.char_lexicon["<bos>"] != legacy.char_lexicon["<eos>"]
    # The published config_path is an absolute path on another machine: the
    # file name is then looked up in the directory.
    zipped = efml.read_model(EFML / "model_zip")
    assert zipped.config_source.endswith("cnn_tiny_zip.json")
    assert zipped.word_lexicon == {} and zipped.options["token_embedder"]["word_dim"] == 0
    assert zipped.options["lstm"]["n_layers"] == 3


def test_package_configs_are_used_when_the_directory_has_none(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"config_path": "/Users/x/word_elmo/cnn_50_100_512_4096_sample.json"})
    )
    config, source = efml.find_config(str(tmp_path))
    assert source == "EFML's configs/cnn_50_100_512_4096_sample.json"
    assert config["encoder"]["dim"] == 4096 and config["token_embedder"]["word_dim"] == 100
    # Sizes from the published config, as the published models have them.
    options = efml.options_from_config(config, 20000, 150000)
    assert options["lstm"]["projection_dim"] == 512
    assert options["token_embedder"]["filters"][-1] == [7, 1024]
    (tmp_path / "config.json").write_text(json.dumps({"config_path": "/x/other.json"}))
    with pytest.raises(ValueError, match=r"config_path '/x/other.json' names a model config"):
        efml.find_config(str(tmp_path))


@pytest.mark.parametrize(
    "section, name, message",
    [
        ("token_embedder", "lstm", r"token_embedder 'lstm' is EFML's character-biLSTM"),
        ("encoder", "lstm", r"encoder 'lstm' is EFML's plain torch LSTM encoder"),
    ],
)
def test_lstm_token_embedder_and_encoder_are_refused_clearly(tmp_path, section, name, message):
    model = tmp_path / "m"
    shutil.copytree(EFML / "model_legacy", model)
    config = json.loads((model / "cnn_tiny.json").read_text())
    config[section]["name"] = name
    (model / "cnn_tiny.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message) as info:
        efml.read_model(model)
    assert "none of the published models" in str(info.value)


def test_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        efml.read_model(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"no ELMoForManyLangs model \(config.json \+ char.dic\)"):
        efml.read_model(tmp_path)
    assert efml.is_model_dir(EFML / "model_zip") and not efml.is_model_dir(tmp_path)
    model = tmp_path / "m"
    shutil.copytree(EFML / "model_legacy", model)
    (model / "char.dic").write_text(
        (model / "char.dic").read_text(encoding="utf-8") + "Z\t999\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"id 999 of 'Z' is outside the char embedding table"):
        efml.read_model(model)
    (model / "word.dic").unlink()
    with pytest.raises(ValueError, match="word_dim 6 but no word.dic"):
        efml.read_model(model)


def test_language_table_agrees_with_the_docs_and_efml_readme():
    # EFML's README links 44 languages to NLPL ids 136..179, one each.
    assert len(preset_catalog.LANGUAGES) == 44
    assert sorted(i for _, i in preset_catalog.LANGUAGES.values()) == list(range(136, 180))
    assert preset_catalog.language_url("de") == "http://vectors.nlpl.eu/repository/11/142.zip"
    page = (REPO / "docs" / "many-languages.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:-1] for line in page.splitlines() if "`elmo-efml-" in line]
    table = {c.strip(): (n.strip(), p.strip(" `"), u.strip()) for n, c, p, u in rows}
    assert table == {
        code: (name, f"elmo-efml-{code}", preset_catalog.language_url(code))
        for code, (name, _) in preset_catalog.LANGUAGES.items()
    }


def test_locate_model_dir(tmp_path):
    assert efml.locate_model_dir(EFML / "model_zip") == str(EFML / "model_zip")
    shutil.copytree(EFML / "model_zip", tmp_path / "unpacked" / "de.model")
    assert efml.locate_model_dir(tmp_path / "unpacked").endswith("de.model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no ELMoForManyLangs model"):
        efml.locate_model_dir(tmp_path / "empty")
