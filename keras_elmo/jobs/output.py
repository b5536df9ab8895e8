"""What the embed jobs compute and how a batch becomes one array per sentence.

`layers`: "all" (n_layers + 1, T, 2P; layer 0 is the token vector
duplicated, like `allennlp elmo --all`), "top" or "average" (T, 2P).
`keras-elmo embed` (`jobs.embed_file`) and `keras-elmo beam-embed`
(`integrations.beam`) compute with these same functions.
"""

import numpy as np

LAYER_CHOICES = ("all", "top", "average")
DEFAULT_LAYERS = "all"
# Sentences per model call.
BATCH_SIZE = 64
# Lines per sorted chunk, in batches; bounds memory and keeps batches dense.
CHUNK_BATCHES = 32
# The shard formats of `keras-elmo beam-embed` (keras_elmo.integrations.beam;
# here, so that the command line reads them without importing Beam).
BEAM_FORMATS = ("hdf5", "tfrecord", "parquet")
# keras_elmo.integrations.spark's choices and defaults (here too, for the same reason):
# what a bad row does, TF Hub's output names, padded tokens per model call.
SPARK_HANDLE_INVALID = ("error", "skip", "keep")
SPARK_HUB_OUTPUTS = ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo")


def check_layers(layers):
    from keras_elmo.errors import InputError

    if layers not in LAYER_CHOICES:
        raise InputError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}.")
    return layers


def embed_all_layers(outputs, n_lstm_layers):
    """Stack a dict output into (batch, n_lstm_layers + 1, T, 2P) like `allennlp elmo --all`."""
    import tensorflow as tf

    word = outputs["word_emb"]
    layers = [tf.concat([word, word], -1)] + [
        outputs[f"lstm_outputs{k + 1}"] for k in range(n_lstm_layers)
    ]
    return tf.stack(layers, axis=1)


def layer_output_fn(layer, layers):
    """A compiled `tokens (B, T) string -> vectors` for a dict-output `ElmoLayer`.

    The vectors are (B, n_layers + 1, T, 2P) for "all", (B, T, 2P) for "top"
    and "average"; `keras-elmo beam-embed` computes with the same function.
    """
    import tensorflow as tf

    n_lstm = layer.n_lstm_layers

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string)])
    def run(tokens):
        out = layer(tokens)
        if layers == "top":
            return out[f"lstm_outputs{n_lstm}"]
        stack = embed_all_layers(out, n_lstm)
        return stack if layers == "all" else tf.reduce_mean(stack, axis=1)

    return run


def token_array(token_lists):
    """Token lists -> a (B, T) array of UTF-8 bytes, "" as padding (at least one column:
    the layer has no zero-width input; an all-empty batch is all padding)."""
    width = max(1, max(len(tokens) for tokens in token_lists))
    array = np.full((len(token_lists), width), b"", dtype=object)
    for row, tokens in enumerate(token_lists):
        array[row, : len(tokens)] = [t.encode("utf-8") for t in tokens]
    return array


def embed_batch(run, token_lists, layers):
    """Token lists -> one array per sentence, padding cut off, with `run`
    (a `layer_output_fn`); each a view of the padded batch's vectors."""
    import tensorflow as tf

    vectors = run(tf.constant(token_array(token_lists))).numpy()
    return [
        vectors[row, :, : len(tokens)] if layers == "all" else vectors[row, : len(tokens)]
        for row, tokens in enumerate(token_lists)
    ]
