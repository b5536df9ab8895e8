"""ELMoForManyLangs models served: SavedModel export (TensorFlow only) and `keras-elmo embed`."""

import json
import textwrap

import numpy as np
import pytest
from support.efml_fixture import EFML, MODELS, SENTENCES, all_layers, expected, padded
from support.tf_only import run_tf_only
from support.tolerance import assert_same_up_to_path

from keras_elmo.layers.elmo_layer import ElmoLayer
from keras_elmo.serving import export

ATOL = 1e-5

# Sentences of the fixture that the in-graph whitespace splitter gives back
# as the same tokens (the U+3000 token is one token only as a token list).
TEXT_ROWS = [k for k, s in enumerate(SENTENCES) if not any("\u3000" in t for t in s)]

LOADER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    work = {work!r}
    jobs = json.load(open(os.path.join(work, "jobs.json")))
    texts = json.load(open(os.path.join(work, "texts.json")))
    tokens = json.load(open(os.path.join(work, "tokens.json")))
    report = {{}}
    for name, path in jobs.items():
        loaded = tf.saved_model.load(path)
        out = {{}}
        res = loaded.signatures["serving_default"](default=tf.constant(texts))
        out.update({{"text/" + k: v.numpy() for k, v in res.items()}})
        longest = max(len(t) for t in tokens)
        dense = [t + [""] * (longest - len(t)) for t in tokens]
        res = loaded.signatures["tokens"](
            tokens=tf.constant(dense), sequence_len=tf.constant([len(t) for t in tokens]))
        out.update({{"tokens/" + k: v.numpy() for k, v in res.items()}})
        np.savez(os.path.join(work, name + ".npz"), **out)
        ops = saved_model_ops(os.path.join(path, "saved_model.pb"))
        report[name] = {{
            "ops": sorted(ops),
            "unregistered": sorted(op for op in ops if op_def_registry.get(op) is None),
        }}
    report["modules"] = {{name: name in sys.modules for name in ("keras", "keras_elmo")}}
    json.dump(report, open(os.path.join(work, "report.json"), "w"))
""")


def stack_of(outputs, prefix, n_lstm):
    word = outputs[f"{prefix}/word_emb"]
    layers = [np.concatenate([word, word], -1)]
    layers += [outputs[f"{prefix}/lstm_outputs{k + 1}"] for k in range(n_lstm)]
    return np.stack(layers, axis=1)


@pytest.mark.slow
def test_exported_saved_model_matches_efml_with_tensorflow_only(tmp_path):
    jobs, layers = {}, {}
    for model in MODELS:
        layer = ElmoLayer.from_elmoformanylangs(EFML / model, stateful=True)
        layers[model] = layer
        jobs[model] = export.export_saved_model(layer, tmp_path / "exports" / model)
    work = tmp_path / "work"
    work.mkdir()
    (work / "jobs.json").write_text(json.dumps(jobs))
    (work / "texts.json").write_text(
        json.dumps([" ".join(SENTENCES[k]) for k in TEXT_ROWS], ensure_ascii=False)
    )
    (work / "tokens.json").write_text(json.dumps(SENTENCES, ensure_ascii=False))
    run_tf_only(LOADER.format(work=str(work)), work)
    report = json.loads((work / "report.json").read_text())
    assert report["modules"] == {"keras": False, "keras_elmo": False}
    for model in MODELS:
        ops = set(report[model]["ops"])
        # The lexicons are core-op hash tables in the graph; nothing else needed.
        assert {"HashTableV2", "LookupTableFindV2"} <= ops, model
        assert not report[model]["unregistered"], report[model]["unregistered"]
        assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
        got = dict(np.load(work / f"{model}.npz"))
        n_lstm = layers[model].n_lstm_layers
        refs = expected(model)
        tokens = stack_of(got, "tokens", n_lstm)
        text = stack_of(got, "text", n_lstm)
        for k, ref in enumerate(refs):
            n = len(SENTENCES[k])
            np.testing.assert_allclose(tokens[k, :, :n], ref, atol=ATOL, rtol=0, err_msg=str(k))
        for row, k in enumerate(TEXT_ROWS):
            n = len(SENTENCES[k])
            np.testing.assert_allclose(text[row, :, :n], refs[k], atol=ATOL, rtol=0)


# German, Russian and Chinese sentences of the fixture, as lines of a UTF-8 file.
FILE_ROWS = (0, 1, 2, 6)


def check_embed_output(path, model):
    """An embed output file against the layer and EFML (every layer, every sentence)."""
    import h5py

    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    direct = all_layers(layer, padded([SENTENCES[k] for k in FILE_ROWS]))
    refs = expected(model)
    with h5py.File(path, "r") as f:
        for row, k in enumerate(FILE_ROWS):
            n = len(SENTENCES[k])
            written = f[str(row)][...]
            assert written.shape == refs[k].shape
            assert_same_up_to_path(written, direct[row, :, :n])
            np.testing.assert_allclose(written, refs[k], atol=ATOL, rtol=0)
        index = json.loads(f["sentence_to_index"][0])
        assert index[" ".join(SENTENCES[1])] == "1"


def write_sentence_file(tmp_path):
    source = tmp_path / "sentences.txt"
    lines = [" ".join(SENTENCES[k]) for k in FILE_ROWS]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


@pytest.mark.parametrize("model", MODELS)
def test_embed_file_reads_an_efml_directory(tmp_path, model):
    from keras_elmo.jobs.embed_file import embed_file

    out = tmp_path / "vectors.hdf5"
    embed_file(write_sentence_file(tmp_path), out, None, None, efml_dir=EFML / model)
    check_embed_output(out, model)


def test_export_from_an_efml_directory(tmp_path):
    path = export.export_from_files(EFML / "model_zip", tmp_path)
    meta = json.loads((tmp_path / "1" / "assets.extra" / "keras_elmo.json").read_text())
    assert path.endswith("1") and meta["options"]["kind"] == "efml"


@pytest.mark.parametrize("model", MODELS)
def test_embed_cli_with_an_efml_model(tmp_path, model):
    from keras_elmo import cli

    out = tmp_path / "vectors.hdf5"
    source = write_sentence_file(tmp_path)
    assert cli.main(["embed", str(source), str(out), "--model", str(EFML / model), "--quiet"]) == 0
    check_embed_output(out, model)


def test_export_cli_with_an_efml_model(tmp_path, capsys):
    from keras_elmo import cli

    base = tmp_path / "exports"
    assert cli.main(["export", str(base), "--model", str(EFML / "model_zip")]) == 0
    meta = json.loads((base / "1" / "assets.extra" / "keras_elmo.json").read_text())
    assert meta["options"]["kind"] == "efml"
    # A directory that holds no model: one line on stderr, exit status 2.
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert cli.main(["export", str(base), "--model", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "empty" in err
