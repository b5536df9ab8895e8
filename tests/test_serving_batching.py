"""The export's batching_parameters.txt: TF Serving request batching within the export's limits."""

import re

from support.tiny_model import TINY_OPTIONS

from keras_elmo.serving import export


def _fields(text):
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    values = {}
    for line in body:
        match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line) or re.fullmatch(
            r"(\w+): (\w+)", line
        )
        assert match, f"not a text-protobuf field: {line!r}"
        values.setdefault(match.group(1), []).append(match.group(2))
    return values


def test_batching_file_is_written_and_fits_the_limits(tmp_path):
    from keras_elmo import ElmoLayer

    layer = ElmoLayer(TINY_OPTIONS)
    path = export.export_saved_model(layer, tmp_path, max_batch_size=20)
    text = (tmp_path / "1" / "assets.extra" / "batching_parameters.txt").read_text()
    assert path.endswith("1")
    fields = _fields(text)
    # The merged batch must pass the export's own max_batch_size (20 here).
    assert fields["max_batch_size"] == ["20"]
    assert fields["allowed_batch_sizes"] == ["8", "16", "20"]
    assert fields["batch_timeout_micros"] == ["5000"]
    assert fields["pad_variable_length_inputs"] == ["true"]
    # The default max_tokens_per_request (2048, keras_elmo/limits.py) over 20
    # sentences: 102 tokens each on average.
    assert "20 sentences pass if they average <= 102 tokens" in text


def test_default_limits_cap_the_batch_at_the_measured_size():
    fields = _fields(export.batching_parameters({"max_batch_size": None}))
    assert fields["max_batch_size"] == ["64"]
    assert fields["allowed_batch_sizes"] == ["8", "16", "32", "64"]
