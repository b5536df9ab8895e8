"""ModelSource: the model-source rules written once, resolved to local files, loaded."""

import keras
import numpy as np
import pytest
from support.http_server import serve

from keras_elmo import ElmoLayer
from keras_elmo.checkpoints import model_source
from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError, MissingFileError

TOKENS = [["The", "cat", "sat", "."], ["Hello", "!", "", ""]]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"options_file": "o.json"}, "give both an options file and a weight file, or neither."),
        (
            {"preset": "elmo-small-en", "options_file": "o.json", "weight_file": "w.hdf5"},
            "give a preset name or model directory or an options file + a weight file, not both.",
        ),
        (
            {"keras_file": "m.keras", "efml_dir": "d"},
            "give a .keras file or an ELMoForManyLangs directory, not both.",
        ),
        (
            {},
            "give exactly one model: a preset name or model directory, an options file + a "
            "weight file, a .keras file or an ELMoForManyLangs directory.",
        ),
    ],
)
def test_the_rules_name_the_fields(fields, message):
    with pytest.raises(InputError) as err:
        ModelSource(**fields)
    assert str(err.value) == message


def test_the_rules_with_the_command_lines_flags_and_default():
    flags = {
        "preset": "--model",
        "options_file": "--options-file",
        "weight_file": "--weight-file",
        "keras_file": "--keras-file",
    }
    with pytest.raises(InputError) as err:
        model_source.check_choice({"weight_file": "w.hdf5"}, flags, default="elmo-small-en")
    assert str(err.value) == (
        "give both --options-file and --weight-file, or neither (then --model, default "
        "elmo-small-en)."
    )
    with pytest.raises(InputError, match="give --model or --keras-file, not both."):
        model_source.check_choice({"preset": "x", "keras_file": "m.keras"}, flags, "d")
    assert model_source.check_choice({"preset": None}, flags, default="d") == {"preset": "d"}


def test_of_takes_a_source_a_name_or_the_fields():
    source = ModelSource(preset="elmo-small-en")
    assert ModelSource.of(source) is source
    assert ModelSource.of("elmo-small-en") == source
    assert ModelSource.of(None, options_file="o", weight_file="w").describe() == {
        "options_file": "o",
        "weight_file": "w",
    }
    with pytest.raises(InputError, match="give a model source or an options file, not both"):
        ModelSource.of("elmo-small-en", options_file="o", weight_file="w")
    with pytest.raises(InputError, match="source must be a ModelSource or a preset name"):
        ModelSource.of(3)


def test_check_is_cheap_and_clear(tmp_path):
    with pytest.raises(MissingFileError, match="ELMo weight file not found: "):
        ModelSource(options_file=__file__, weight_file=str(tmp_path / "w.hdf5")).check()
    with pytest.raises(InputError, match="expected a .keras file, got 'm.h5'"):
        ModelSource(keras_file="m.h5").check()
    with pytest.raises(MissingFileError, match="Keras file not found"):
        ModelSource(keras_file=str(tmp_path / "m.keras")).check()
    with pytest.raises(InputError, match="did you mean 'elmo-small-en'"):
        ModelSource(preset="elmo-smal-en").check()
    with pytest.raises(MissingFileError, match="ELMoForManyLangs model directory not found"):
        ModelSource(efml_dir=str(tmp_path / "none")).check()
    # Remote paths are checked where they are read.
    assert ModelSource(keras_file="gs://bucket/m.keras").check().keras_file.startswith("gs://")


def test_resolve_gives_local_files(fixture_dir, tmp_path, download_cache):
    shipped = ModelSource(preset="elmo-small-en").resolve()
    assert shipped.preset is None
    assert shipped.options_file.endswith("options.json")
    assert shipped.weight_file.endswith("weights.hdf5")
    assert shipped.model_files() == [shipped.options_file, shipped.weight_file]
    options = (fixture_dir / "options.json").read_bytes()
    weights = (fixture_dir / "lm_weights.hdf5").read_bytes()
    with serve({"/o.json": options, "/w.hdf5": weights}) as server:
        remote = ModelSource(options_file=server.url("/o.json"), weight_file=server.url("/w.hdf5"))
        local = remote.resolve()
    with open(local.options_file, "rb") as f:
        assert f.read() == options
    assert str(download_cache) in local.weight_file
    # Read from the cache afterwards, the server gone.
    assert remote.resolve() == local


def test_from_source_loads_each_kind_alike(fixture_dir, tmp_path):
    pair = ModelSource(
        options_file=fixture_dir / "options.json", weight_file=fixture_dir / "lm_weights.hdf5"
    )
    from_pair = ElmoLayer.from_source(pair, output_mode="dict")
    from_pair.cache_vocabulary(["The", "cat"])
    inputs = keras.Input((None,), dtype="string")
    keras.Model(inputs, from_pair(inputs)["elmo"]).save(tmp_path / "m.keras")
    from_keras = ElmoLayer.from_source(ModelSource(keras_file=tmp_path / "m.keras"), stateful=True)
    assert from_keras.stateful and from_keras.token_cache.vocabulary == ["The", "cat"]
    np.testing.assert_array_equal(
        np.asarray(from_keras.clone(stateful=False)(TOKENS)["elmo"]),
        np.asarray(from_pair(TOKENS)["elmo"]),
    )
