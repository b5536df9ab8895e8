"""`keras-elmo embed`: a file of sentences -> an hdf5 file of ELMo vectors.

The output has one dataset per input line, named by its 0-based index:
(n_layers + 1, T, 2P) for "all" (layer 0 is the token vector duplicated),
(T, 2P) for "top" and "average"; plus `sentence_to_index`, a JSON string.

Memory does not grow with the file: lines are read in chunks, each chunk is
sorted by length so batches carry little padding, and every sentence is
written out as soon as its batch is done (the datasets are keyed by index,
so the order of writing does not matter). With `stateful=True` batches are
consecutive lines in file order instead, so the LSTM state carries over from
one batch row to the same row of the next batch, like the original code.
"""

import json

import h5py
import numpy as np

from keras_elmo.errors import InputError
from keras_elmo.progress import progress_bar
from keras_elmo.text import characters

LAYER_CHOICES = ("all", "top", "average")
# Lines per sorted chunk, in batches; bounds memory and keeps batches dense.
CHUNK_BATCHES = 32


def read_sentences(path):
    """Yield (index, tokens) for each line; clear errors for bad lines."""
    with open(path, "rb") as f:
        for index, raw in enumerate(f):
            line = characters.decode_utf8(raw, f"{path}: line {index + 1}")
            tokens = line.split()
            if not tokens:
                raise InputError(
                    f"{path}: line {index + 1} is empty; every line must hold a sentence."
                )
            yield index, tokens


def _check_input(path):
    """First pass: validate every line and count them (streaming)."""
    count = sum(1 for _ in read_sentences(path))
    if count == 0:
        raise InputError(f"{path}: the input file has no sentences.")
    return count


def _batches(path, batch_size, sort):
    """Yield lists of (index, tokens); length-sorted within chunks unless `sort` is False."""
    chunk = []
    limit = batch_size * (CHUNK_BATCHES if sort else 1)
    for item in read_sentences(path):
        chunk.append(item)
        if len(chunk) == limit:
            yield from _split(chunk, batch_size, sort)
            chunk = []
    if chunk:
        yield from _split(chunk, batch_size, sort)


def _split(chunk, batch_size, sort):
    if sort:
        chunk = sorted(chunk, key=lambda item: len(item[1]))
    for start in range(0, len(chunk), batch_size):
        yield chunk[start : start + batch_size]


def _token_array(batch):
    longest = max(len(tokens) for _, tokens in batch)
    out = np.full((len(batch), longest), b"", dtype=object)
    for row, (_, tokens) in enumerate(batch):
        out[row, : len(tokens)] = [t.encode("utf-8") for t in tokens]
    return out


def layer_output_fn(layer, layers):
    """A compiled `tokens (B, T) string -> vectors` for a dict-output `ElmoLayer`.

    The vectors are (B, n_layers + 1, T, 2P) for "all", (B, T, 2P) for "top"
    and "average"; `keras-elmo beam-embed` computes with the same function.
    """
    import tensorflow as tf

    from keras_elmo.layers.elmo_layer import embed_all_layers

    n_lstm = layer.n_lstm_layers

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string)])
    def run(tokens):
        out = layer(tokens)
        if layers == "top":
            return out[f"lstm_outputs{n_lstm}"]
        stack = embed_all_layers(out, n_lstm)
        return stack if layers == "all" else tf.reduce_mean(stack, axis=1)

    return run


def embed_file(
    input_file,
    output_file,
    options_file,
    weight_file,
    layers="all",
    batch_size=64,
    stateful=False,
    progress=False,
    efml_dir=None,
):
    """Embed every line of `input_file` into `output_file`; see the module docstring.

    `progress`: show a progress bar (sentences done, rate, time left) on stderr.
    `efml_dir`: an ELMoForManyLangs model directory, read instead of
    `options_file` + `weight_file` (both then None).
    """
    if efml_dir is not None and (options_file is not None or weight_file is not None):
        raise ValueError("embed_file: give an EFML directory or options + weight files, not both.")
    if layers not in LAYER_CHOICES:
        raise ValueError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}.")
    total = _check_input(input_file)

    import tensorflow as tf

    from keras_elmo.layers.elmo_layer import ElmoLayer

    settings = {"output_mode": "dict", "stateful": stateful, "max_batch_size": batch_size}
    if efml_dir is not None:
        layer = ElmoLayer.from_elmoformanylangs(efml_dir, **settings)
    else:
        layer = ElmoLayer.from_original(options_file, weight_file, **settings)
    run = layer_output_fn(layer, layers)
    sentence_to_index = {}
    with (
        progress_bar(total, "keras-elmo embed", unit="sentence", enabled=bool(progress)) as bar,
        h5py.File(output_file, "w") as out,
    ):
        for batch in _batches(input_file, batch_size, sort=not stateful):
            vectors = run(tf.constant(_token_array(batch))).numpy()
            for row, (index, tokens) in enumerate(batch):
                n = len(tokens)
                data = vectors[row, :, :n] if layers == "all" else vectors[row, :n]
                out.create_dataset(str(index), data=data)
                sentence_to_index[" ".join(tokens)] = str(index)
            bar.update(len(batch))
        out.create_dataset(
            "sentence_to_index", data=[json.dumps(sentence_to_index)], dtype=h5py.string_dtype()
        )
    return total
