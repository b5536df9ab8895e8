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
