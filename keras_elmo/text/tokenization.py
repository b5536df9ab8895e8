"""Raw sentences -> tokens in the graph: the one registry of tokenizer names.

`ElmoLayer`, `ElmoTokenizer`, the SavedModel export and the command line
all take their tokenizer by one of these names:
- "whitespace": split on runs of whitespace (what TF Hub's ELMo module did);
- "punctuation": first put spaces around punctuation, quotes, `--` and
  English clitics (`n't`, `'s`, ...), approximating the PTB-style tokens the
  published models were trained on, then split on whitespace;
- "tf_text": TensorFlow Text's `UnicodeScriptTokenizer`, which splits on
  whitespace and wherever the Unicode script class changes ("don't" ->
  don ' t). It needs the tf-text extra, and a graph that uses
  it needs `import tensorflow_text` wherever it is loaded.

Whitespace has one definition everywhere in keras_elmo (the graph
tokenizers, `tokenize_python`, `keras-elmo embed`): the characters for which
Python's `str.isspace()` is true, i.e. what `str.split()` splits on, as the
readers of AllenNLP and bilm-tf do. That is Unicode's White_Space (ASCII
space and tab..carriage return, NEL, NO-BREAK SPACE, the EN/EM/THIN/...
spaces U+2000-U+200A, IDEOGRAPHIC SPACE, ...) plus the ASCII separators
U+001C-U+001F. `WHITESPACE_RANGES` lists them; the graph rewrites each run
to one space before splitting (`tf.strings.split` alone knows only ASCII).

The first two use only `tf.strings.regex_replace` and `tf.strings.split`, so
exported graphs run on every stock TensorFlow Serving build; their rules are
also available in Python (`tokenize_python`) for data preparation.
"""

import re

from keras_elmo.errors import InputError

TOKENIZERS = ("whitespace", "punctuation", "tf_text")
DEFAULT_TOKENIZER = "whitespace"
# The tokenizers that need no op outside core TensorFlow (and have Python rules).
CORE_TOKENIZERS = ("whitespace", "punctuation")

# Inclusive code point ranges of `str.isspace()` (tests check them against
# Python's own set over all of Unicode).
WHITESPACE_RANGES = (
    (0x09, 0x0D),  # tab, line feed, vertical tab, form feed, carriage return
    (0x1C, 0x20),  # file/group/record/unit separators, space
    (0x85, 0x85),  # next line
    (0xA0, 0xA0),  # no-break space
    (0x1680, 0x1680),  # ogham space mark
    (0x2000, 0x200A),  # en quad .. hair space (EM SPACE is U+2003)
    (0x2028, 0x2029),  # line and paragraph separators
    (0x202F, 0x202F),  # narrow no-break space
    (0x205F, 0x205F),  # medium mathematical space
    (0x3000, 0x3000),  # ideographic space
)


def _char_class(escape):
    parts = []
    for lo, hi in WHITESPACE_RANGES:
        parts.append(escape(lo) if lo == hi else f"{escape(lo)}-{escape(hi)}")
    return "[" + "".join(parts) + "]+"


# The same class for RE2 (graph) and Python `re`.
WHITESPACE_RE2 = _char_class(lambda c: f"\\x{{{c:x}}}")
_WHITESPACE_PY = re.compile(_char_class(lambda c: f"\\U{c:08x}"))

# (RE2 pattern, rewrite) applied in order. RE2's \w and \b are ASCII-only, so
# Python applies them with re.ASCII: both sides then agree on every input.
PUNCTUATION_RULES = (
    (r"([,;:?!()\[\]{}\"“”‘’])", r" \1 "),  # standalone punctuation and quotes
    (r"--", r" -- "),  # dashes
    (r"(\w)(n't)\b", r"\1 \2"),  # don't -> do n't
    (r"(\w)('s|'re|'ve|'ll|'d|'m|'S|'RE|'VE|'LL|'D|'M)\b", r"\1 \2"),  # clitics
    (r"\.(\s*)$", r" .\1"),  # the sentence-final period
)


def normalize_whitespace(sentences):
    """In the graph: every run of whitespace (see the module docstring) -> one space."""
    import tensorflow as tf

    return tf.strings.regex_replace(sentences, WHITESPACE_RE2, " ")


def split_whitespace(sentences):
    """Sentences (batch,) -> ragged tokens (batch, None), split on whitespace."""
    import tensorflow as tf

    # After normalize_whitespace the only whitespace left is " ", which the
    # separator-less split (ASCII whitespace runs) handles, leading and
    # trailing runs included.
    return tf.strings.split(normalize_whitespace(sentences))


def tokenize_ragged(sentences, mode="whitespace"):
    """In-graph tokenization by name -> ragged tokens (batch, None)."""
    import tensorflow as tf

    if mode not in TOKENIZERS:
        raise ValueError(f"Unknown tokenizer {mode!r}; choose one of {TOKENIZERS}.")
    if mode == "tf_text":
        tensorflow_text = import_tensorflow_text('the "tf_text" tokenizer')
        # keras_elmo's whitespace first (ICU's White_Space lacks U+001C-U+001F).
        splitter = tensorflow_text.UnicodeScriptTokenizer(keep_whitespace=False)
        return splitter.tokenize(normalize_whitespace(sentences))
    if mode == "punctuation":
        sentences = normalize_whitespace(sentences)
        for pattern, rewrite in PUNCTUATION_RULES:
            sentences = tf.strings.regex_replace(sentences, pattern, rewrite)
    return split_whitespace(sentences)


def whitespace_tokenize(sentences):
    """Sentences (batch,) -> dense tokens (batch, T), "" as padding."""
    return tokenize_ragged(sentences, "whitespace").to_tensor(default_value="")


# The optional extra that brings tensorflow-text (only the "tf_text" tokenizers need it),
# as installed from a keras_elmo checkout (the package is not on PyPI).
TF_TEXT_EXTRA = "-e '.[tf-text]'"


def import_tensorflow_text(feature):
    """`tensorflow_text`, imported only when `feature` asks for it.

    It is an extra, not a dependency: it exists for fewer platforms and Python
    versions than TensorFlow and each release fits one TensorFlow minor
    version, so requiring it would narrow every install for one tokenizer.
    """
    from keras_elmo.errors import require_tensorflow

    require_tensorflow(feature, 'use the "punctuation" or "whitespace" tokenizer')
    try:
        import tensorflow_text
    except ImportError as error:
        raise ImportError(
            f"{feature} needs tensorflow-text, which could not be imported ({error}). "
            f"Install the extra: pip install {TF_TEXT_EXTRA} in the keras_elmo checkout "
            "(it picks the tensorflow-text release that matches the installed TensorFlow)."
        ) from error
    return tensorflow_text


def text_in_model_error(who):
    """The error for a string `keras.Input` on a backend whose tensors hold no strings."""
    import keras

    from keras_elmo.errors import BackendError

    return BackendError(
        f"{who}: on the {keras.config.backend()!r} backend a Keras model cannot take text "
        "(its tensors hold no strings): map keras_elmo.ElmoPreprocessor over a tf.data "
        "pipeline and give the model char ids, keras.Input(shape=(None, 50), dtype='int32')."
    )


def check_tokenizer(mode, who, argument):
    """A layer's tokenizer name: `ValueError` unless known; "tf_text" imported now.

    (Failing here names the extra, or the backend, rather than at the first call.)
    """
    if mode not in TOKENIZERS:
        raise ValueError(f"{who}: {argument} must be one of {TOKENIZERS}, got {mode!r}.")
    if mode == "tf_text":
        import_tensorflow_text(f'{who}({argument}="tf_text")')


def tokenize(sentences, mode="whitespace"):
    """In-graph tokenization by name -> dense tokens (batch, T); see the module docstring."""
    return tokenize_ragged(sentences, mode).to_tensor(default_value="")


def tokenize_python(sentence, mode="whitespace"):
    """The same rules on one Python string -> list of tokens."""
    if mode == "punctuation":
        sentence = _WHITESPACE_PY.sub(" ", sentence)
        for pattern, rewrite in PUNCTUATION_RULES:
            sentence = re.sub(pattern, rewrite, sentence, flags=re.ASCII)
    elif mode != "whitespace":
        raise ValueError(
            f"No Python rules for tokenizer {mode!r}; choose one of {CORE_TOKENIZERS}."
        )
    return sentence.split()  # str.split(): the whitespace of WHITESPACE_RANGES


def python_strings_to_tensor(inputs, who):
    """Python lists of strings -> a `tf.string` tensor; anything else unchanged.

    Keras layers accept only tensors and arrays as positional inputs, so the
    layers call this on what they are given first. A list of `str`/`bytes` is
    a batch of sentences (batch,); a list of token lists is (batch, T), the
    shorter rows padded with "" at the end (the padding value of a dense
    string tensor). Tuples and numpy string/object arrays are treated alike.
    Errors name the offending element, since TensorFlow's own conversion
    error would not.
    """
    import numpy as np
    import tensorflow as tf

    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "USO":
        inputs = inputs.tolist()
    if not isinstance(inputs, (list, tuple)):
        return inputs
    rows = list(inputs)
    if all(isinstance(row, (str, bytes)) for row in rows):
        return tf.constant(rows, dtype=tf.string, shape=(len(rows),))
    for i, row in enumerate(rows):
        if isinstance(row, np.ndarray):
            row = rows[i] = row.tolist()
        if not isinstance(row, (list, tuple)):
            raise TypeError(
                f"{who}: a list input must hold either sentences (all str) or token "
                f"lists (all lists); element {i} is {type(row).__name__} ({row!r:.40})."
            )
        for j, token in enumerate(row):
            if not isinstance(token, (str, bytes)):
                raise TypeError(
                    f"{who}: token {j} of sentence {i} is {type(token).__name__} "
                    f"({token!r:.40}), not a string. Char ids go in as an int array "
                    f"(keras_elmo.batch_to_ids returns one)."
                )
    longest = max((len(row) for row in rows), default=0)
    padded = [list(row) + [""] * (longest - len(row)) for row in rows]
    return tf.constant(padded, dtype=tf.string, shape=(len(rows), longest))


# Short (exports carry it as a constant) and without quotes (a graph-mode
# Assert prints them escaped).
PADDING_RULE = (
    "padding may only end a row (drop empty tokens, or pass char ids from batch_to_ids, "
    "where an empty token is real)"
)


def check_trailing_padding(tokens, who):
    """Dense string tokens (batch, T) whose "" (padding) comes only at the end of each row.

    A real token after a "" would otherwise be read at the wrong position:
    the sentence's length is its count of non-empty tokens. Eagerly a bad
    row raises `InputError` naming it; in a graph (a `tf.function`, an
    export) an `InvalidArgumentError` with the same message. Returns
    `tokens` (in a graph, made to depend on the check).
    """
    import tensorflow as tf

    empty = tf.cast(tf.equal(tokens, ""), tf.int32)
    # A real token with an empty one anywhere before it in its row.
    misplaced = tf.logical_and(empty == 0, tf.cumsum(empty, axis=1, exclusive=True) > 0)
    bad_rows = tf.reduce_any(misplaced, axis=1)
    # The first bad row and its first misplaced position; reductions that
    # stay defined for B = 0 and T = 0 (a trailing sentinel row, reduce_min).
    row = tf.argmax(tf.concat([tf.cast(bad_rows, tf.int32), [1]], 0), output_type=tf.int32)
    steps = tf.range(tf.shape(tokens)[1])[None, :]
    first = tf.reduce_min(tf.where(misplaced, steps, tf.shape(tokens)[1]), axis=1)
    position = tf.gather(tf.concat([first, [0]], 0), row)
    template = f"keras_elmo: {who}: row {{}} has an empty string (padding) before the real "
    template += f"token at position {{}}; {PADDING_RULE}."
    if tf.executing_eagerly():
        if bool(tf.reduce_any(bad_rows)):
            raise InputError(template.format(int(row), int(position)))
        return tokens
    # Integers only in the message: TensorFlow must never have to decode token bytes.
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad_rows)),
        [tf.strings.format(template, (row, position))],
        name="check_trailing_padding",
    )
    with tf.control_dependencies([check]):
        return tf.identity(tokens)
