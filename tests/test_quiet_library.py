"""keras_elmo's own calls are quiet: no Keras warning from training, the
bfloat16 warning names the user's line, and `list_presets()` answers without
TensorFlow."""

import json
import os
import subprocess
import sys
import warnings

import pytest
from support.bilm_fixture import FIXTURE_DIR as FIXTURES
from support.paths import REPO
from support.tiny_model import TINY_OPTIONS

from keras_elmo import cpu


@pytest.mark.slow  # an in-process training run or export, over 5 s
def test_training_prints_no_keras_warning(tmp_path):
    import keras

    from keras_elmo.training import data, loop, trainer

    corpus = tmp_path / "train.txt"
    corpus.write_text("the cat sat .\na dog ran .\n" * 20, encoding="utf-8")
    vocab = data.build_vocab(data.count_tokens(str(corpus)))
    keras.utils.set_random_seed(0)
    model = trainer.BiLMTrainer(TINY_OPTIONS, len(vocab), n_negative=4, seed=0)
    model.compile(optimizer=loop.make_optimizer("adam", 0.01))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.train(model, str(corpus), vocab, batch_size=4, steps_per_epoch=2, epochs=1)
    messages = [f"{w.category.__name__}: {w.message} ({w.filename})" for w in caught]
    assert not [m for m in messages if "shuffle" in m], messages
    assert not [w for w in caught if issubclass(w.category, UserWarning)], messages


def test_the_bfloat16_warning_points_at_the_users_call(monkeypatch):
    from keras_elmo import ElmoLayer

    monkeypatch.setattr(cpu, "cpu_bfloat16_units", lambda: (False, "this CPU has none"))
    monkeypatch.setattr(cpu, "_BF16_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = ElmoLayer.from_original(  # the line the warning must name
            FIXTURES / "options.json", FIXTURES / "lm_weights.hdf5", matmul_dtype="bfloat16"
        )
        layer([["a", "b"]])
    ours = [w for w in caught if "matmul_dtype='bfloat16'" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert ours[0].filename == __file__
    assert "this CPU has none" in str(ours[0].message)


def test_the_bfloat16_warning_from_keras_call_names_the_call(monkeypatch):
    from keras_elmo import ElmoLayer, options

    monkeypatch.setattr(cpu, "cpu_bfloat16_units", lambda: (False, "this CPU has none"))
    monkeypatch.setattr(cpu, "_BF16_WARNED", False)
    layer = ElmoLayer(options.load_options(FIXTURES / "options.json"), matmul_dtype="bfloat16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer([["a", "b"]])  # built here, inside Keras's __call__
    ours = [w for w in caught if "matmul_dtype='bfloat16'" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]


@pytest.mark.slow
def test_list_presets_itself_imports_no_tensorflow():
    """`list_presets()` needs no TensorFlow. (`import keras_elmo` registers the
    Keras layers, which imports TensorFlow, in every program but the command
    line; there, as here, listing the presets imports none.)"""
    code = (
        "import json, sys; import keras_elmo; names = keras_elmo.list_presets(); "
        "print(json.dumps([len(names), 'tensorflow' in sys.modules, 'keras' in sys.modules]))"
    )
    # The command line's interpreter, where `import keras_elmo` registers no layers.
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'keras-elmo'; " + code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [49, False, False]


def test_the_command_line_shows_the_bfloat16_warning_as_one_line(tmp_path, capsys, monkeypatch):
    from keras_elmo.cli import main

    monkeypatch.setattr(cpu, "cpu_bfloat16_units", lambda: (False, "this CPU has none"))
    monkeypatch.setattr(cpu, "_BF16_WARNED", False)
    text = tmp_path / "in.txt"
    text.write_text("a b c\n", encoding="utf-8")
    model = ["--options-file", FIXTURES / "options.json", "--weight-file"]
    model.append(FIXTURES / "lm_weights.hdf5")
    argv = ["embed", text, tmp_path / "out.hdf5", *model, "--matmul-dtype", "bfloat16", "--quiet"]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("keras-elmo embed: warning: keras_elmo: matmul_dtype='bfloat16'")
    assert "this CPU has none" in lines[0]
