"""Raw sentences -> tokens, in the graph with core TensorFlow ops only.

Two modes:
- "whitespace": split on runs of whitespace (what TF Hub's ELMo module did);
- "punctuation": first put spaces around punctuation, quotes, `--` and
  English clitics (`n't`, `'s`, ...), approximating the PTB-style tokens the
  published models were trained on, then split on whitespace.

Only `tf.strings.regex_replace` and `tf.strings.split` are used, so exported
graphs run on every stock TensorFlow Serving build. The same rules are
available in Python (`tokenize_python`) for data preparation.
"""

import re

TOKENIZERS = ("whitespace", "punctuation")

# (RE2 pattern, rewrite) applied in order; RE2 and Python `re` agree on these.
PUNCTUATION_RULES = (
    (r"([,;:?!()\[\]{}\"“”‘’])", r" \1 "),  # standalone punctuation and quotes
    (r"--", r" -- "),  # dashes
    (r"(\w)(n't)\b", r"\1 \2"),  # don't -> do n't
    (r"(\w)('s|'re|'ve|'ll|'d|'m|'S|'RE|'VE|'LL|'D|'M)\b", r"\1 \2"),  # clitics
    (r"\.(\s*)$", r" .\1"),  # the sentence-final period
)


def whitespace_tokenize(sentences):
    """Sentences (batch,) -> dense tokens (batch, T), "" as padding."""
    import tensorflow as tf

    return tf.strings.split(sentences).to_tensor(default_value="")


def punctuation_tokenize(sentences):
    """PTB-like tokens (batch, T), "" as padding; core ops only."""
    import tensorflow as tf

    for pattern, rewrite in PUNCTUATION_RULES:
        sentences = tf.strings.regex_replace(sentences, pattern, rewrite)
    return tf.strings.split(sentences).to_tensor(default_value="")


# The optional extra that brings tensorflow-text (only the "tf_text" tokenizers need it).
TF_TEXT_EXTRA = "keras_elmo[tf-text]"


def import_tensorflow_text(feature):
    """`tensorflow_text`, imported only when `feature` asks for it.

    It is an extra, not a dependency: it exists for fewer platforms and Python
    versions than TensorFlow and each release fits one TensorFlow minor
    version, so requiring it would narrow every install for one tokenizer.
    """
    try:
        import tensorflow_text
    except ImportError as error:
        raise ImportError(
            f"{feature} needs tensorflow-text, which could not be imported ({error}). "
            f"Install the extra: pip install '{TF_TEXT_EXTRA}' (it picks the tensorflow-text "
            "release that matches the installed TensorFlow)."
        ) from error
    return tensorflow_text


def tokenize(sentences, mode="whitespace"):
    """In-graph tokenization by name; see the module docstring."""
    if mode == "whitespace":
        return whitespace_tokenize(sentences)
    if mode == "punctuation":
        return punctuation_tokenize(sentences)
    raise ValueError(f"Unknown tokenizer {mode!r}; choose one of {TOKENIZERS}.")


def tokenize_python(sentence, mode="whitespace"):
    """The same rules on one Python string -> list of tokens."""
    if mode == "punctuation":
        for pattern, rewrite in PUNCTUATION_RULES:
            sentence = re.sub(pattern, rewrite, sentence)
    elif mode != "whitespace":
        raise ValueError(f"Unknown tokenizer {mode!r}; choose one of {TOKENIZERS}.")
    return sentence.split()


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
