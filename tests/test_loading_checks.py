"""Loading checks: options sizes, and the weights file against the options, before allocation.

Every bad file is built in tmp_path from the bilm-tf fixture; every error must
name the file and the option or dataset at fault.
"""

import json
import shutil

import h5py
import numpy as np
import pytest

from keras_elmo import options as options_lib
from keras_elmo.checkpoints import original
from keras_elmo.errors import InputError
from keras_elmo.layers.elmo_layer import ElmoLayer

W0 = "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"


def fixture_options(fixture_dir):
    return json.loads((fixture_dir / "options.json").read_text())


def write_options(tmp_path, options, name="options.json"):
    path = tmp_path / name
    path.write_text(json.dumps(options))
    return path


@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if a layer gets as far as allocating its weights."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("ElmoLayer.build ran: the check came after allocation")

    monkeypatch.setattr(ElmoLayer, "build", refuse)


def copy_weights(fixture_dir, tmp_path):
    path = tmp_path / "weights.hdf5"
    shutil.copy(fixture_dir / "lm_weights.hdf5", path)
    return path


def from_original_error(options_file, weight_file):
    with pytest.raises(InputError) as info:
        ElmoLayer.from_original(str(options_file), str(weight_file))
    return str(info.value)


# ---------------------------------------------------------------- options sizes


@pytest.mark.parametrize(
    "section, key, value, limit_name",
    [
        ("lstm", "dim", 2_000_000, "lstm.dim"),
        ("lstm", "projection_dim", 100_000, "lstm.projection_dim"),
        ("lstm", "n_layers", 1000, "lstm.n_layers"),
        ("char_cnn", "max_characters_per_token", 10**9, "char_cnn.max_characters_per_token"),
        ("char_cnn", "n_highway", 10**6, "char_cnn.n_highway"),
    ],
)
def test_sizes_over_the_limits_are_refused_before_allocation(
    fixture_dir, tmp_path, no_build, section, key, value, limit_name
):
    options = fixture_options(fixture_dir)
    options[section][key] = value
    options_file = write_options(tmp_path, options)
    message = from_original_error(options_file, fixture_dir / "lm_weights.hdf5")
    assert str(options_file) in message
    limit = options_lib.SIZE_LIMITS[limit_name]
    assert f"option {limit_name} = {value} is over the limit of {limit}" in message


def test_filter_limits_and_total_weight_limit(fixture_dir, tmp_path):
    options = fixture_options(fixture_dir)
    options["char_cnn"]["filters"] = [[1, 4]] * 65
    with pytest.raises(InputError, match=r"number of filters\) = 65 is over the limit of 64"):
        options_lib.validate_options(options, source="x.json")
    options = fixture_options(fixture_dir)
    options["char_cnn"]["filters"] = [[1, 40000]]
    with pytest.raises(InputError, match=r"count of one filter\) = 40000"):
        options_lib.validate_options(options, source="x.json")
    # Each size within its bound, the whole too big: 2 directions x 32 layers x
    # W_0 (2 x 16384) x (4 x 32768) alone is 2**37 weights.
    options = fixture_options(fixture_dir)
    options["lstm"].update(dim=32768, projection_dim=16384, n_layers=32)
    with pytest.raises(
        InputError, match=r"x.json: these sizes need [\d,]+ weights, over the limit"
    ):
        options_lib.validate_options(options, source="x.json")


def test_count_parameters_matches_a_built_model(fixture_dir):
    options = options_lib.validate_options(fixture_options(fixture_dir))
    layer = ElmoLayer(options)
    layer.build()
    n_file = sum(int(np.prod(shape)) for shape in original.expected_datasets(options).values())
    # The layer holds one more char-embedding row (padding id 0) than the file.
    assert options_lib.count_parameters(options) == n_file + options["char_cnn"]["embedding"]["dim"]
    built = layer.token_encoder.count_params() + sum(
        lstm.count_params() for lstm in layer.bilm.lstms
    )
    assert built == options_lib.count_parameters(options)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o["lstm"].update(cell_clip=float("nan")), "lstm.cell_clip must be a positive"),
        (lambda o: o["lstm"].update(proj_clip=float("inf")), "lstm.proj_clip must be a positive"),
        (
            lambda o: o["lstm"].update(use_skip_connections="false"),
            "'use_skip_connections' must be true or false, got 'false'",
        ),
    ],
)
def test_values_that_would_silently_change_the_outputs(fixture_dir, tmp_path, change, message):
    options = fixture_options(fixture_dir)
    change(options)
    # json writes NaN/Infinity, which json.loads reads back: the values reach validation.
    options_file = write_options(tmp_path, options)
    with pytest.raises(InputError, match=message) as info:
        options_lib.load_options(options_file)
    assert str(options_file) in str(info.value)


@pytest.mark.parametrize(
    "section, key, value, shown",
    [
        # These three were read as 0 (no highway) before.
        ("char_cnn", "n_highway", [], "n_highway must be a non-negative integer, got []"),
        ("char_cnn", "n_highway", False, "n_highway must be a non-negative integer, got False"),
        ("char_cnn", "n_highway", "", "n_highway must be a non-negative integer, got ''"),
        ("char_cnn", "n_highway", 1.0, "n_highway must be a non-negative integer, got 1.0"),
        ("lstm", "n_layers", True, "option 'n_layers' must be an integer, got True"),
        ("lstm", "dim", "64", "option 'dim' must be an integer, got '64'"),
        # 0.0 == False: was accepted as false.
        ("lstm", "use_skip_connections", 0.0, "'use_skip_connections' must be true or false"),
        ("char_cnn", "activation", ["relu"], "unknown activation ['relu']"),
    ],
)
def test_option_types_are_checked_before_any_default(
    fixture_dir, tmp_path, no_build, section, key, value, shown
):
    options = fixture_options(fixture_dir)
    options[section][key] = value
    options_file = write_options(tmp_path, options)
    message = from_original_error(options_file, fixture_dir / "lm_weights.hdf5")
    assert shown in message and str(options_file) in message and "\n" not in message


def test_absent_or_null_n_highway_is_still_no_highway(fixture_dir):
    options = fixture_options(fixture_dir)
    options["char_cnn"]["n_highway"] = None
    assert options_lib.validate_options(options)["char_cnn"]["n_highway"] == 0
    del options["char_cnn"]["n_highway"]
    assert options_lib.validate_options(options)["char_cnn"]["n_highway"] == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"lstm": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"{" + b" " * (options_lib.MAX_OPTIONS_BYTES + 1) + b"}", "not an options file"),
        (b"[1, 2]", "options must be a dict"),
    ],
)
def test_unreadable_options_files(tmp_path, content, message):
    path = tmp_path / "options.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        options_lib.load_options(path)
    assert str(path) in str(info.value)


def test_options_file_with_a_byte_order_mark_loads(fixture_dir, tmp_path):
    path = tmp_path / "options.json"
    path.write_bytes(b"\xef\xbb\xbf" + (fixture_dir / "options.json").read_bytes())
    assert options_lib.load_options(path) == options_lib.load_options(fixture_dir / "options.json")


# ------------------------------------------------------ weights vs the options


def test_expected_datasets_agree_with_the_weight_table(fixture_dir, tiny_options):
    for options in (fixture_options(fixture_dir), tiny_options):
        options = options_lib.validate_options(options)
        layer = ElmoLayer(options)
        layer.build()
        table = {
            port.dataset: port.shape
            for port in original.weight_table(layer.token_encoder, layer.bilm)
        }
        assert original.expected_datasets(options) == table
    with h5py.File(fixture_dir / "lm_weights.hdf5", "r") as f:
        expected = original.expected_datasets(
            options_lib.validate_options(fixture_options(fixture_dir))
        )
        assert {name: tuple(f[name].shape) for name in expected} == expected


def test_options_that_disagree_with_the_weights_fail_before_allocation(
    fixture_dir, tmp_path, no_build
):
    # Within every bound, but not the model in the file: refused from the file's
    # shapes alone (12 million weights would be allocated otherwise).
    options = fixture_options(fixture_dir)
    options["lstm"]["dim"] = 20000
    options_file = write_options(tmp_path, options)
    weight_file = fixture_dir / "lm_weights.hdf5"
    message = from_original_error(options_file, weight_file)
    assert str(weight_file) in message
    assert f"{W0!r} has shape (32, 256), but the options give (32, 80000)" in message


def test_missing_dataset_and_group_in_its_place(fixture_dir, tmp_path, no_build):
    weights = copy_weights(fixture_dir, tmp_path)
    with h5py.File(weights, "r+") as f:
        del f["CNN_high_1/b_carry"]
    message = from_original_error(fixture_dir / "options.json", weights)
    assert f"Weights file {weights} has no dataset 'CNN_high_1/b_carry'" in message
    assert "(expected shape (124,))" in message
    with h5py.File(weights, "r+") as f:
        f.create_group("CNN_high_1/b_carry")
    message = from_original_error(fixture_dir / "options.json", weights)
    assert f"{weights} has a group, not a dataset, 'CNN_high_1/b_carry'" in message


@pytest.mark.parametrize(
    "dtype, data, shown",
    [
        (h5py.string_dtype(), np.array(["x"] * 124, dtype=object), "object"),
        ("S4", np.array([b"abcd"] * 124), "|S4"),
        ("i4", np.zeros(124, "i4"), "int32"),
    ],
)
def test_non_float_dataset_names_file_and_dataset(
    fixture_dir, tmp_path, no_build, dtype, data, shown
):
    weights = copy_weights(fixture_dir, tmp_path)
    with h5py.File(weights, "r+") as f:
        del f["CNN_high_0/b_transform"]
        f.create_dataset("CNN_high_0/b_transform", data=data, dtype=dtype)
    message = from_original_error(fixture_dir / "options.json", weights)
    assert (
        f"Weights file {weights}: dataset 'CNN_high_0/b_transform' holds {shown} values, "
        "not floating-point numbers." in message
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_names_the_dataset(fixture_dir, tmp_path, bad):
    weights = copy_weights(fixture_dir, tmp_path)
    with h5py.File(weights, "r+") as f:
        f[W0][3, 7] = bad
        f[W0][5, 0] = bad
    message = from_original_error(fixture_dir / "options.json", weights)
    assert (
        f"Weights file {weights}: dataset {W0!r} holds 2 NaN or infinite values "
        "(the first at index (3, 7))." in message
    )


def test_not_an_hdf5_file(fixture_dir, tmp_path, no_build):
    weights = tmp_path / "weights.hdf5"
    weights.write_bytes(b"not hdf5 at all")
    message = from_original_error(fixture_dir / "options.json", weights)
    assert message.startswith(f"Cannot read weights file {weights}:")


def test_the_fixture_still_loads(fixture_dir, tmp_path):
    # The checks pass on a good file: the same weights as the file's datasets.
    layer = ElmoLayer.from_original(
        str(fixture_dir / "options.json"), str(fixture_dir / "lm_weights.hdf5")
    )
    with h5py.File(fixture_dir / "lm_weights.hdf5", "r") as f:
        np.testing.assert_array_equal(layer.token_encoder.char_embed.numpy()[1:], f["char_embed"])
