"""keras_elmo: ELMo contextual word vectors as a Keras 3 layer."""

from keras_elmo.layers.elmo_layer import ElmoLayer
from keras_elmo.layers.scalar_mix import ScalarMix
from keras_elmo.layers.token_cache import TokenCache
from keras_elmo.options import load_options, published_options
from keras_elmo.text.characters import batch_to_ids, tokens_to_char_ids
from keras_elmo.text.tokenizer import ElmoTokenizer

__version__ = "0.1.0"

__all__ = [
    "ElmoLayer",
    "ElmoTokenizer",
    "ScalarMix",
    "TokenCache",
    "batch_to_ids",
    "load_options",
    "published_options",
    "tokens_to_char_ids",
]
