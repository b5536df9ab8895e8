"""Tokens -> ELMo character ids, in numpy (`batch_to_ids`) and in the graph.

A token becomes `max_chars` ids (50 for every published model):
`[bow, b0, b1, ..., bn, eow, pad, pad, ...]` where `b*` are the bytes of the
token's UTF-8 encoding truncated to `max_chars - 2`, and every id is then
shifted by +1 so that an all-zero row means "no token here" (batch padding).
`<S>` and `</S>` get the special begin/end-of-sentence char instead of bytes.

The empty string: in a Python token list (`batch_to_ids`) "" is a real
token, `[bow, eow, pad, ...]`, as in AllenNLP's `batch_to_ids`; in a dense
string tensor (`tokens_to_char_ids`, `ElmoLayer`) "" is the padding value and
maps to all zeros, since a dense tensor has no other way to mark padding;
`ElmoLayer` therefore refuses a "" before a real token in a row.
A token that is not valid UTF-8 is an error, never silently altered.
"""

import numpy as np

from keras_elmo.errors import InputError

MAX_CHARS_PER_TOKEN = 50
# Error messages show at most this many characters of a bad token (a token
# may be a megabyte long).
SHOWN_CHARS = 40

# The raw (unshifted) special char ids of the original vocabulary.
BOS_CHAR = 256  # begin of sentence
EOS_CHAR = 257  # end of sentence
BOW_CHAR = 258  # begin of word
EOW_CHAR = 259  # end of word
PAD_CHAR = 260  # padding inside a token
# Every id is stored +1 so that 0 can mean "no token" (batch padding).
ID_SHIFT = 1

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def _special_token_ids(marker, max_chars):
    ids = np.full((max_chars,), PAD_CHAR, dtype=np.int32)
    ids[0], ids[1], ids[2] = BOW_CHAR, marker, EOW_CHAR
    return ids + ID_SHIFT


def boundary_char_ids(max_chars=MAX_CHARS_PER_TOKEN):
    """The shifted char ids of `<S>` and `</S>`, shape (2, max_chars)."""
    return np.stack(
        [_special_token_ids(BOS_CHAR, max_chars), _special_token_ids(EOS_CHAR, max_chars)]
    )


def decode_utf8(raw, where):
    """bytes -> str; invalid UTF-8 is an `InputError` naming `where` and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{where} is not valid UTF-8 (byte {err.start}: {err.reason}).") from None


def encode_utf8(text, where):
    """str -> UTF-8 bytes; a lone surrogate is an `InputError` naming `where`."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(
            f"{where} is not valid UTF-8 (character {err.start}: {err.reason})."
        ) from None


def _token_bytes(token, where):
    if isinstance(token, bytes):
        decode_utf8(token, f"{where}: token {shown(token)}")
        return token
    if not isinstance(token, str):
        raise TypeError(f"{where}: tokens must be str or bytes, got {type(token).__name__}.")
    return encode_utf8(token, f"{where}: token {shown(token)}")


def shown(token):
    """A token for an error message: its repr, at most `SHOWN_CHARS` characters of it."""
    text = repr(token)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def token_to_ids(token, max_chars=MAX_CHARS_PER_TOKEN, where="token"):
    """Shifted char ids of one token, shape (max_chars,); "" gives `[bow, eow, pad...]`."""
    data = _token_bytes(token, where)
    if data == b"<S>":
        return _special_token_ids(BOS_CHAR, max_chars)
    if data == b"</S>":
        return _special_token_ids(EOS_CHAR, max_chars)
    data = data[: max_chars - 2]
    ids = np.full((max_chars,), PAD_CHAR, dtype=np.int32)
    ids[0] = BOW_CHAR
    ids[1 : len(data) + 1] = np.frombuffer(data, dtype=np.uint8)
    ids[len(data) + 1] = EOW_CHAR
    return ids + ID_SHIFT


def batch_to_ids(sentences, max_chars=MAX_CHARS_PER_TOKEN):
    """Turns a batch of token lists into ELMo character ids (numpy).

    Each token becomes `max_chars` ids: begin-of-word, the bytes of its UTF-8
    encoding (truncated to `max_chars - 2`), end-of-word, then
    padding-within-a-token, every id shifted by +1 so that 0 means "no token
    here". Rows are 0-padded to the longest sentence; no `<S>`/`</S>` is
    added (the model adds them). An empty-string token is a real token
    (begin/end-of-word ids), as in AllenNLP's `batch_to_ids`; only in dense
    string tensors is `""` padding.

    Args:
        sentences: a list of sentences, each a list of tokens (`str` or
            UTF-8 `bytes`). A token that is not valid UTF-8 is an
            `InputError` naming the sentence and token.
        max_chars: int. Ids per token, at least 3. Defaults to `50` (every
            published model).

    Returns:
        An int32 numpy array `(len(sentences), longest sentence, max_chars)`
        for `ElmoLayer`; an empty batch gives `(0, 0, max_chars)`.

    Example:

    >>> import keras_elmo
    >>> ids = keras_elmo.batch_to_ids([["hi", "!"], ["a"]])
    >>> ids.shape
    (2, 2, 50)

    Byte values + 1 ("h" is 104, "i" 105), between begin-of-word (258 + 1)
    and end-of-word (259 + 1), then padding-within-a-token (260 + 1):

    >>> ids[0, 0, :6].tolist()
    [259, 105, 106, 260, 261, 261]
    >>> int(ids[1, 1].max())  # the second sentence has one token
    0
    """
    if isinstance(sentences, (str, bytes)):
        raise TypeError("batch_to_ids expects a list of token lists, got a single string.")
    sentences = list(sentences)
    if max_chars < 3:
        raise ValueError(f"max_chars must be at least 3, got {max_chars}.")
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, (str, bytes)):
            raise TypeError(
                f"sentence {i} is a string; pass a list of tokens (e.g. sentence.split())."
            )
    # An empty batch is (0, 0, max_chars): empty input is a value, not an error.
    longest = max((len(s) for s in sentences), default=0)
    out = np.zeros((len(sentences), longest, max_chars), dtype=np.int32)
    cache = {}
    for i, sentence in enumerate(sentences):
        for j, token in enumerate(sentence):
            key = token
            if key not in cache:
                cache[key] = token_to_ids(token, max_chars, where=f"sentence {i}, token {j}")
            out[i, j] = cache[key]
    return out


def tokens_to_char_ids(tokens, max_chars=MAX_CHARS_PER_TOKEN, validate_utf8=True):
    """Turns string tokens into ELMo character ids in the graph.

    The in-graph twin of `batch_to_ids`, for tensors: the same ids for every
    non-empty token, but `""` is padding and maps to all zeros (a dense
    tensor has no other way to mark padding). Only core TensorFlow ops are
    used, so exported graphs run on stock TensorFlow Serving.

    Args:
        tokens: a string `tf.Tensor` of any rank, or a `tf.RaggedTensor`.
        max_chars: int. Ids per token. Defaults to `50` (every published
            model).
        validate_utf8: bool. Whether a token that is not valid UTF-8 fails
            (`InvalidArgumentError`) instead of being encoded byte by byte.
            Defaults to `True`.

    Returns:
        int32 ids of the same (ragged) shape as `tokens` plus a trailing
        `max_chars` axis.

    Example:

    >>> import tensorflow as tf
    >>> import keras_elmo
    >>> ids = keras_elmo.tokens_to_char_ids(tf.constant([["hi", ""]]))
    >>> ids.shape
    TensorShape([1, 2, 50])
    >>> ids[0, 0, :6].numpy().tolist()  # bytes + 1 between begin/end of word
    [259, 105, 106, 260, 261, 261]
    >>> int(tf.reduce_max(ids[0, 1]))  # "" is padding
    0
    """
    import tensorflow as tf

    if isinstance(tokens, tf.RaggedTensor):
        return tokens.with_flat_values(
            tokens_to_char_ids(tokens.flat_values, max_chars, validate_utf8)
        )
    tokens = tf.convert_to_tensor(tokens)
    if tokens.dtype != tf.string:
        raise TypeError(f"tokens_to_char_ids expects string tokens, got dtype {tokens.dtype.name}.")
    if validate_utf8:
        # Transcoding with errors="replace" changes exactly the invalid inputs.
        clean = tf.strings.unicode_transcode(
            tokens, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        valid = tf.equal(clean, tokens)
        # The message shows the cleaned tokens (each invalid byte as U+FFFD),
        # never the raw ones: TensorFlow decodes its error messages as UTF-8,
        # and raw bytes would turn the error into a UnicodeDecodeError.
        tf.debugging.Assert(
            tf.reduce_all(valid),
            [
                "keras_elmo: a token is not valid UTF-8 (invalid bytes shown as U+FFFD):",
                tf.strings.substr(tf.boolean_mask(clean, ~valid), 0, SHOWN_CHARS, unit="UTF8_CHAR"),
            ],
            summarize=3,
        )
    n_bytes = max_chars - 2
    head = tf.strings.substr(tokens, 0, n_bytes, unit="BYTE")
    length = tf.strings.length(head, unit="BYTE")
    # Pad every token to exactly n_bytes so decode_raw gives a dense array; the
    # filler is masked out below by `length`, so its value does not matter.
    filler = tf.constant("\x00" * n_bytes)
    fixed = tf.strings.substr(tf.strings.join([head, tf.fill(tf.shape(head), filler)]), 0, n_bytes)
    raw = tf.cast(tf.io.decode_raw(fixed, tf.uint8), tf.int32)
    # decode_raw cannot know the byte length of zero strings (it gives a last
    # axis of 0): state the shape, so that empty inputs give empty ids.
    raw = tf.reshape(raw, tf.concat([tf.shape(tokens), [n_bytes]], 0))  # (..., n_bytes)
    pos = tf.range(n_bytes, dtype=tf.int32)
    len_ = tf.expand_dims(length, -1)
    body = tf.where(pos < len_, raw, tf.where(pos == len_, EOW_CHAR, PAD_CHAR))
    bow = tf.fill(tf.concat([tf.shape(tokens), [1]], 0), BOW_CHAR)
    pad_tail = tf.fill(tf.concat([tf.shape(tokens), [1]], 0), PAD_CHAR)
    # A full-length token puts its end-of-word marker in the last slot.
    last = tf.where(len_ == n_bytes, EOW_CHAR, pad_tail)
    ids = tf.concat([bow, body, last], axis=-1)
    specials = boundary_char_ids(max_chars) - ID_SHIFT
    ids = tf.where(tf.expand_dims(tokens == BOS_TOKEN, -1), specials[0], ids)
    ids = tf.where(tf.expand_dims(tokens == EOS_TOKEN, -1), specials[1], ids)
    ids = ids + ID_SHIFT
    return tf.where(tf.expand_dims(tokens == "", -1), 0, ids)
