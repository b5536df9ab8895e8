"""SavedModel export for TensorFlow Serving (`keras_elmo.export`).

The exports are loaded in fresh subprocesses that import only TensorFlow
(plus tensorflow_text for the tf_text export), never Keras or keras_elmo,
and must give the layer's own outputs (to the path tolerance, support/tolerance.py).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.tf_only import run_tf_only
from support.tolerance import assert_same_up_to_path
from tensorflow.core.protobuf import saved_model_pb2

import keras_elmo
from keras_elmo import cli
from keras_elmo.layers.elmo_layer import ElmoLayer
from keras_elmo.serving import export
from keras_elmo.text import tokenization

SENTENCES = [
    "the cat sat on the mat .",
    "",
    "dogs   are\tin the fog",
    "a",
    'Don\'t panic, said the "hitchhiker" -- twice.',
]
# Tokens with junk beyond sequence_len: the signature must mask it to "".
TOKENS = [
    ["the", "cat", "sat", "JUNK"],
    ["", "", "", ""],
    ["dogs", "are", "in", "fog"],
    ["a", "JUNK", "JUNK", "JUNK"],
]
SEQUENCE_LEN = [3, 0, 4, 1]

OUTPUT_KEYS = ["word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default", "sequence_len"]

# Ops of tensorflow-text 2.12 that the tf_text tokenizer option may use (the
# WhitespaceTokenizer and UnicodeScriptTokenizer kernels). Checked against the
# tensorflow/text sources: whitespace_tokenizer_kernel_template.h (kOpName,
# the TF-Lite-shim namespaced name), unicode_script_tokenize_op.cc and
# whitespace_tokenize_op.cc (the V1 whitespace op).
TF_TEXT_2_12_OPS = {
    "TFText>WhitespaceTokenizeWithOffsetsV2",
    "WhitespaceTokenizeWithOffsets",
    "UnicodeScriptTokenizeWithOffsets",
}
DENYLIST = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


LOADER = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    if {use_tf_text!r}:
        import tensorflow_text  # registers the tf-text ops
    from tensorflow.python.framework import op_def_registry

    work = {work!r}
    jobs = json.load(open(os.path.join(work, "jobs.json")))
    sentences = np.load(os.path.join(work, "sentences.npy"))
    tokens = np.load(os.path.join(work, "tokens.npy"))
    sequence_len = np.load(os.path.join(work, "sequence_len.npy"))
    report = {{}}
    for name, path in jobs.items():
        loaded = tf.saved_model.load(path)
        out = {{}}
        for sig in ("serving_default", "default"):
            res = loaded.signatures[sig](default=tf.constant(sentences))
            out.update({{f"{{sig}}/{{k}}": v.numpy() for k, v in res.items()}})
        res = loaded.signatures["tokens"](tokens=tf.constant(tokens),
                                          sequence_len=tf.constant(sequence_len))
        out.update({{f"tokens/{{k}}": v.numpy() for k, v in res.items()}})
        np.savez(os.path.join(work, name + ".npz"), **out)
        ops = saved_model_ops(os.path.join(path, "saved_model.pb"))
        report[name] = {{
            "ops": sorted(ops),
            "unregistered": sorted(op for op in ops if op_def_registry.get(op) is None),
            "n_variables": len(loaded.elmo_variables),
        }}
    report["modules"] = {{"keras": "keras" in sys.modules,
                         "keras_elmo": "keras_elmo" in sys.modules,
                         "tensorflow_text": "tensorflow_text" in sys.modules}}
    json.dump(report, open(os.path.join(work, "report.json"), "w"))
""")


def _run_loader(work, jobs, use_tf_text=False):
    """Load each export in a fresh TF-only process; returns (report, outputs per job)."""
    os.makedirs(work, exist_ok=True)
    np.save(os.path.join(work, "sentences.npy"), np.array([s.encode() for s in SENTENCES]))
    np.save(
        os.path.join(work, "tokens.npy"), np.array([[t.encode() for t in row] for row in TOKENS])
    )
    np.save(os.path.join(work, "sequence_len.npy"), np.array(SEQUENCE_LEN, dtype=np.int32))
    with open(os.path.join(work, "jobs.json"), "w") as f:
        json.dump(jobs, f)
    run_tf_only(
        LOADER.format(work=str(work), use_tf_text=use_tf_text), work, block_keras=not use_tf_text
    )
    with open(os.path.join(work, "report.json")) as f:
        report = json.load(f)
    outputs = {name: dict(np.load(os.path.join(work, name + ".npz"))) for name in jobs}
    return report, outputs


def _tiny_layer(options, **kwargs):
    layer = ElmoLayer(options, output_mode="dict", **kwargs)
    layer.build()
    # Non-trivial mix weights, so a mix that is not copied shows.
    layer.mixes[0].scalar_weights.assign([0.3, -0.2, 0.5])
    layer.mixes[0].gamma.assign([1.7])
    return layer


def _reference(layer, tokenizer="whitespace"):
    """The layer's own outputs for SENTENCES (default signature) and TOKENS."""
    sentences = tf.constant(SENTENCES)
    tokens = tokenization.tokenize(sentences, tokenizer)
    text = {k: v.numpy() for k, v in layer(tokens).items()}
    masked = [
        [t if j < n else "" for j, t in enumerate(row)] for row, n in zip(TOKENS, SEQUENCE_LEN)
    ]
    tok = {k: v.numpy() for k, v in layer(tf.constant(masked)).items()}
    return text, tok


def _assert_matches(got, text_ref, tok_ref):
    for sig in ("serving_default", "default"):
        assert sorted(k.split("/")[1] for k in got if k.startswith(sig + "/")) == sorted(
            OUTPUT_KEYS
        )
        for key in OUTPUT_KEYS:
            actual = got[f"{sig}/{key}"]
            assert actual.shape == text_ref[key].shape, (sig, key)
            assert_same_up_to_path(actual, text_ref[key], err_msg=f"{sig}/{key}")
    for key in OUTPUT_KEYS:
        actual = got[f"tokens/{key}"]
        assert actual.shape == tok_ref[key].shape, key
        assert_same_up_to_path(actual, tok_ref[key], err_msg=f"tokens/{key}")


def _check_padding(outputs, sequence_len):
    """Padding positions exactly zero, no NaN, `default` finite."""
    for key in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo"):
        x = outputs[key]
        assert np.isfinite(x).all(), key
        for i, n in enumerate(sequence_len):
            assert (x[i, n:] == 0).all(), (key, i)
    assert np.isfinite(outputs["default"]).all()
    for i, n in enumerate(sequence_len):
        if n == 0:
            assert (outputs["default"][i] == 0).all()


# ---------------------------------------------------------------- shared exports
@pytest.fixture(scope="module")
def exports(tmp_path_factory, fixture_dir):
    """Tiny random (whitespace + punctuation) and bilm-tf fixture exports, loaded TF-only."""
    from support.tiny_model import TINY_OPTIONS

    root = tmp_path_factory.mktemp("exports")
    tiny = _tiny_layer(TINY_OPTIONS)
    real = ElmoLayer.from_original(
        str(fixture_dir / "options.json"), str(fixture_dir / "lm_weights.hdf5"), output_mode="dict"
    )
    jobs = {
        "tiny": export.export_saved_model(tiny, root / "tiny"),
        "tiny_punct": export.export_saved_model(tiny, root / "tiny_punct", tokenizer="punctuation"),
        "real": export.export_saved_model(real, root / "real"),
    }
    report, outputs = _run_loader(root / "work", jobs)
    refs = {
        "tiny": _reference(tiny),
        "tiny_punct": _reference(tiny, "punctuation"),
        "real": _reference(real),
    }
    layers = {"tiny": tiny, "tiny_punct": tiny, "real": real}
    return {"jobs": jobs, "report": report, "outputs": outputs, "refs": refs, "layers": layers}


@pytest.mark.slow
def test_loads_without_keras(exports):
    assert exports["report"]["modules"] == {
        "keras": False,
        "keras_elmo": False,
        "tensorflow_text": False,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "tiny_punct", "real"])
def test_signatures_match_layer(exports, name):
    got = exports["outputs"][name]
    text_ref, tok_ref = exports["refs"][name]
    _assert_matches(got, text_ref, tok_ref)
    # The empty sentence: length 0, zero vectors, no NaN.
    assert got["default/sequence_len"][1] == 0
    _check_padding(
        {k.split("/")[1]: v for k, v in got.items() if k.startswith("default/")},
        got["default/sequence_len"],
    )
    _check_padding(
        {k.split("/")[1]: v for k, v in got.items() if k.startswith("tokens/")}, SEQUENCE_LEN
    )
    np.testing.assert_array_equal(got["tokens/sequence_len"], SEQUENCE_LEN)


@pytest.mark.slow
def test_output_shapes_and_dtypes(exports):
    got = exports["outputs"]["tiny"]
    p = exports["layers"]["tiny"].projection_dim
    t = max(len(s.split()) for s in SENTENCES)
    b = len(SENTENCES)
    assert got["default/word_emb"].shape == (b, t, p)
    for key in ("lstm_outputs1", "lstm_outputs2", "elmo"):
        assert got[f"default/{key}"].shape == (b, t, 2 * p)
        assert got[f"default/{key}"].dtype == np.float32
    assert got["default/default"].shape == (b, 2 * p)
    assert got["default/sequence_len"].dtype == np.int32
    np.testing.assert_array_equal(got["default/sequence_len"], [len(s.split()) for s in SENTENCES])
    assert got["tokens/elmo"].shape == (len(TOKENS), len(TOKENS[0]), 2 * p)


@pytest.mark.slow
def test_punctuation_tokenizer_splits_in_graph(exports):
    got = exports["outputs"]["tiny_punct"]["default/sequence_len"]
    expected = [len(tokenization.tokenize_python(s, "punctuation")) for s in SENTENCES]
    np.testing.assert_array_equal(got, expected)
    assert expected != [len(s.split()) for s in SENTENCES]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "tiny_punct", "real"])
def test_core_ops_only(exports, name):
    report = exports["report"][name]
    assert report["ops"], "no ops found in the graph"
    assert not DENYLIST & set(report["ops"])
    assert report["unregistered"] == [], f"non-core ops: {report['unregistered']}"


@pytest.mark.slow
def test_variables_saved_once_not_as_constants(exports):
    layer = exports["layers"]["tiny"]
    path = exports["jobs"]["tiny"]
    n_vars = len(layer.variables)  # stateless source: every variable is exported
    assert exports["report"]["tiny"]["n_variables"] == n_vars
    names = [
        n
        for n, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))
        if not n.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")
    ]
    assert len(names) == n_vars
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in layer.variables)
    data = sum(
        os.path.getsize(os.path.join(path, "variables", f))
        for f in os.listdir(os.path.join(path, "variables"))
        if ".data-" in f
    )
    assert weight_bytes <= data <= weight_bytes * 1.05 + 4096
    # The graph holds no weight-sized constant: no Const node (graph or function
    # library) comes near the largest weight, and all of them together are a
    # small fraction of the real model's weights. (Comparing whole graph sizes
    # of two configs was order-dependent: the graph itself grows with the number
    # of conv filters and highways.)
    real = exports["layers"]["real"]
    real_bytes = sum(int(np.prod(v.shape)) * 4 for v in real.variables)
    assert real_bytes > 200_000
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(exports["jobs"]["real"], "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    nodes = [n for mg in sm.meta_graphs for n in mg.graph_def.node]
    nodes += [
        n for mg in sm.meta_graphs for fn in mg.graph_def.library.function for n in fn.node_def
    ]
    sizes = [n.attr["value"].tensor.ByteSize() for n in nodes if n.op == "Const"]
    largest_weight = max(int(np.prod(v.shape)) * 4 for v in real.variables)
    assert max(sizes) < largest_weight / 10, (max(sizes), largest_weight)
    assert sum(sizes) < real_bytes / 10, (sum(sizes), real_bytes)


@pytest.mark.slow
def test_metadata(exports):
    path = exports["jobs"]["tiny_punct"]
    with open(os.path.join(path, export.METADATA_DIR, export.METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["tokenizer"] == "punctuation"
    assert meta["keras_elmo_version"] == keras_elmo.__version__
    assert meta["requires_tensorflow_text"] is False
    assert sorted(meta["outputs"]) == sorted(OUTPUT_KEYS)


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(exports):
    cli_bin = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli_bin):
        pytest.skip(f"saved_model_cli not found next to {sys.executable}")
    proc = subprocess.run(
        [cli_bin, "show", "--all", "--dir", exports["jobs"]["tiny"]],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    sections = {}
    for name in export.SIGNATURE_NAMES:
        marker = f"signature_def['{name}']:"
        assert marker in text
        start = text.index(marker)
        end = min(
            [
                text.index(f"signature_def['{other}']:")
                for other in export.SIGNATURE_NAMES
                if text.index(f"signature_def['{other}']:") > start
            ]
            + [len(text)]
        )
        sections[name] = text[start:end]
    for name in ("serving_default", "default"):
        sec = sections[name]
        assert "inputs['default'] tensor_info:" in sec
        assert "dtype: DT_STRING" in sec and "shape: (-1)" in sec
    sec = sections["tokens"]
    assert "inputs['tokens'] tensor_info:" in sec and "shape: (-1, -1)" in sec
    assert "inputs['sequence_len'] tensor_info:" in sec and "DT_INT32" in sec
    for sec in sections.values():
        for key in OUTPUT_KEYS:
            assert f"outputs['{key}'] tensor_info:" in sec
        assert "DT_FLOAT" in sec
        outputs = sec[sec.index("outputs[") :]
        seq = outputs[outputs.index("outputs['sequence_len']") :]
        assert seq.split("\n")[1].strip() == "dtype: DT_INT32"
        assert "Method name is: tensorflow/serving/predict" in sec


# ---------------------------------------------------------------- REST bodies
def _predict_like_tf_serving(loaded, body, signature="serving_default"):
    """Do what TF Serving's REST `:predict` does with a JSON body (row or columnar)."""
    body = json.loads(json.dumps(body))  # exactly what crosses the wire
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]  # name -> TensorSpec
    if "instances" in body:
        instances = body["instances"]
        if len(specs) == 1 and not (
            isinstance(instances[0], dict) and set(instances[0]) <= set(specs)
        ):
            (name,) = specs
            columns = {name: instances}
        else:
            columns = {name: [inst[name] for inst in instances] for name in specs}
    else:
        inputs = body["inputs"]
        columns = inputs if isinstance(inputs, dict) else {next(iter(specs)): inputs}
    tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in columns.items()}
    out = {k: v.numpy().tolist() for k, v in fn(**tensors).items()}
    if "instances" in body:
        batch = len(body["instances"])
        assert all(len(v) == batch for v in out.values())
        response = {"predictions": [{k: v[i] for k, v in out.items()} for i in range(batch)]}
    else:
        response = {"outputs": out}
    return json.loads(json.dumps(response))


@pytest.mark.slow
def test_rest_bodies(exports):
    loaded = tf.saved_model.load(exports["jobs"]["tiny"])
    p2 = 2 * exports["layers"]["tiny"].projection_dim
    # Row format, default signature: bare strings.
    resp = _predict_like_tf_serving(loaded, {"instances": ["the cat sat", "", "a dog"]})
    preds = resp["predictions"]
    assert len(preds) == 3 and sorted(preds[0]) == sorted(OUTPUT_KEYS)
    assert [p["sequence_len"] for p in preds] == [3, 0, 2]
    assert len(preds[0]["elmo"]) == 3 and len(preds[0]["elmo"][0]) == p2
    assert len(preds[0]["default"]) == p2
    assert preds[1]["default"] == [0.0] * p2
    # Row format, named input.
    resp2 = _predict_like_tf_serving(loaded, {"instances": [{"default": "the cat sat"}]})
    assert_same_up_to_path(resp2["predictions"][0]["elmo"], preds[0]["elmo"])
    # Columnar format, default signature.
    resp = _predict_like_tf_serving(loaded, {"inputs": {"default": ["the cat sat", "a dog"]}})
    assert np.array(resp["outputs"]["elmo"]).shape == (2, 3, p2)
    assert resp["outputs"]["sequence_len"] == [3, 2]
    assert_same_up_to_path(resp["outputs"]["elmo"][0], preds[0]["elmo"])
    # Tokens signature, row format: one dict per instance.
    body = {
        "signature_name": "tokens",
        "instances": [
            {"tokens": ["the", "cat", "sat"], "sequence_len": 3},
            {"tokens": ["a", "dog", ""], "sequence_len": 2},
        ],
    }
    resp = _predict_like_tf_serving(loaded, body, "tokens")
    assert [p["sequence_len"] for p in resp["predictions"]] == [3, 2]
    assert_same_up_to_path(resp["predictions"][0]["elmo"], preds[0]["elmo"])
    assert resp["predictions"][1]["elmo"][2] == [0.0] * p2
    # Tokens signature, columnar.
    body = {
        "signature_name": "tokens",
        "inputs": {"tokens": [["the", "cat", "sat"], ["a", "dog", ""]], "sequence_len": [3, 2]},
    }
    resp = _predict_like_tf_serving(loaded, body, "tokens")
    assert np.array(resp["outputs"]["word_emb"]).shape == (2, 3, p2 // 2)
    assert np.array(resp["outputs"]["default"]).shape == (2, p2)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tensorflow_model_server_rest(exports, tmp_path):
    server = shutil.which("tensorflow_model_server")
    if server is None:
        pytest.skip(
            "tensorflow_model_server not on PATH; install it (see README.md, "
            "'Serving with TensorFlow Serving', 'Tests and the integration test') "
            "to run a real REST predict"
        )
    base = tmp_path / "elmo"
    shutil.copytree(exports["jobs"]["tiny"], base / "1")
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            f"--rest_api_port={port}",
            "--port=0",
            "--model_name=elmo",
            f"--model_base_path={base}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/elmo"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if b'"AVAILABLE"' in r.read():
                        break
            except OSError:
                pass
            assert proc.poll() is None, "tensorflow_model_server exited"
            assert time.time() < deadline, "model did not become AVAILABLE"
            time.sleep(0.5)
        for body, _sig in (
            ({"instances": ["the cat sat", ""]}, "serving_default"),
            (
                {
                    "signature_name": "tokens",
                    "inputs": {"tokens": [["the", "cat", "sat"]], "sequence_len": [3]},
                },
                "tokens",
            ),
        ):
            req = urllib.request.Request(
                url + ":predict",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                resp = json.loads(r.read())
            got = resp["predictions"] if "predictions" in resp else resp["outputs"]
            elmo = got[0]["elmo"] if isinstance(got, list) else got["elmo"][0]
            assert_same_up_to_path(elmo, exports["outputs"]["tiny"]["default/elmo"][0, :3])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------- tf_text option
@pytest.mark.slow
def test_tf_text_tokenizer_export(tmp_path):
    pytest.importorskip("tensorflow_text")
    from support.tiny_model import TINY_OPTIONS

    layer = _tiny_layer(TINY_OPTIONS)
    path = export.export_saved_model(layer, tmp_path / "tt", tokenizer="tf_text")
    with open(os.path.join(path, export.METADATA_DIR, export.METADATA_FILE)) as f:
        assert json.load(f)["requires_tensorflow_text"] is True
    # Loading needs the tf-text ops: load with tensorflow_text imported.
    report, outputs = _run_loader(tmp_path / "work_tt", {"tt": path}, use_tf_text=True)
    # tensorflow_text imports Keras itself; keras_elmo is still never needed.
    assert report["modules"]["keras_elmo"] is False
    assert report["modules"]["tensorflow_text"] is True
    _assert_matches(outputs["tt"], *_reference(layer, "tf_text"))
    # Op check in a process that has NOT imported tensorflow_text.
    code = textwrap.dedent(f"""
        import json, sys
        from tensorflow.python.framework import op_def_registry
        ops = saved_model_ops({os.path.join(path, "saved_model.pb")!r})
        assert "tensorflow_text" not in sys.modules and "keras" not in sys.modules
        unregistered = sorted(o for o in ops if op_def_registry.get(o) is None)
        print(json.dumps({{"ops": sorted(ops), "unregistered": unregistered}}))
    """)
    info = json.loads(run_tf_only(code, tmp_path, timeout=180).strip().splitlines()[-1])
    assert not DENYLIST & set(info["ops"])
    assert info["unregistered"], "expected the tf-text tokenizer op in the graph"
    assert set(info["unregistered"]) <= TF_TEXT_2_12_OPS, info["unregistered"]


def test_tf_text_export_without_the_extra_names_it(tmp_path, monkeypatch):
    from support.tiny_model import TINY_OPTIONS

    monkeypatch.setitem(sys.modules, "tensorflow_text", None)  # as if not installed
    layer = _tiny_layer(TINY_OPTIONS)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[tf-text]'")):
        export.export_saved_model(layer, tmp_path / "tt", tokenizer="tf_text")
    assert not (tmp_path / "tt" / "1").exists()


# ---------------------------------------------------------------- models, files, CLI
@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_export_from_model_and_keras_file(tmp_path, tiny_options):
    inputs = keras.Input(shape=(), dtype="string")
    elmo = ElmoLayer(tiny_options, stateful=True, max_batch_size=8, dropout=0.5, name="elmo")
    outputs = keras.layers.Dense(2)(elmo(inputs))
    model = keras.Model(inputs, outputs)
    elmo.mixes[0].scalar_weights.assign([1.0, 0.0, -1.0])
    path = export.export_saved_model(model, tmp_path / "m")
    assert path == str(tmp_path / "m" / "1")
    loaded = tf.saved_model.load(path)
    # Stateful source: the export is stateless (no carried-state variables).
    assert len(loaded.elmo_variables) == len(elmo.variables) - 2 - 1  # state_c/h, dropout seed
    elmo.reset_states()
    sentences = tf.constant(["the cat sat", "", "a dog"])
    expected = elmo(sentences).numpy()
    got = loaded.signatures["serving_default"](default=sentences)["elmo"].numpy()
    assert_same_up_to_path(got, expected)

    model.save(tmp_path / "model.keras")
    path2 = export.export_from_files(str(tmp_path / "model.keras"), tmp_path / "m")
    assert path2 == str(tmp_path / "m" / "2")
    got2 = tf.saved_model.load(path2).signatures["default"](default=sentences)["elmo"].numpy()
    assert_same_up_to_path(got2, expected)


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_cli_export_versions(tmp_path, fixture_dir):
    argv = [
        "export",
        "--options-file",
        str(fixture_dir / "options.json"),
        "--weight-file",
        str(fixture_dir / "lm_weights.hdf5"),
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    assert (tmp_path / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "1" / "variables").is_dir()
    assert cli.main(argv) == 0
    assert (tmp_path / "2" / "saved_model.pb").is_file()
    # No temporary directories are left behind.
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]
    # An existing version is refused with a one-line error.
    assert cli.main(argv + ["--version", "2"]) == 2


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_explicit_version(tmp_path, tiny_options):
    layer = _tiny_layer(tiny_options)
    assert export.export_saved_model(layer, tmp_path, version=7) == str(tmp_path / "7")
    assert export.export_saved_model(layer, tmp_path) == str(tmp_path / "8")
    with pytest.raises(ValueError, match="already exists"):
        export.export_saved_model(layer, tmp_path, version=7)
    with pytest.raises(ValueError, match="version"):
        export.export_saved_model(layer, tmp_path, version=-1)


def test_bad_inputs(tmp_path, tiny_options):
    with pytest.raises(ValueError, match="ElmoLayer"):
        export.export_saved_model(keras.layers.Dense(3), tmp_path)
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no ElmoLayer"):
        export.export_saved_model(model, tmp_path)
    with pytest.raises(ValueError, match="tokenizer"):
        export.export_saved_model(_tiny_layer(tiny_options), tmp_path, tokenizer="spacy")
    with pytest.raises(ValueError, match=".keras"):
        export.export_from_files(str(tmp_path / "weights.h5"), tmp_path)
    with pytest.raises(FileNotFoundError):
        export.export_from_files((str(tmp_path / "o.json"), str(tmp_path / "w.hdf5")), tmp_path)
    assert os.listdir(tmp_path) == []
