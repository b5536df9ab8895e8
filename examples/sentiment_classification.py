"""Sentence sentiment with ELMo vs a trainable word embedding.

Data: movie-review sentences with a mean human rating in [-4, 4] (Pang & Lee
sentences rated for VADER). Label = sign of the rating, zeros dropped; a
fixed seeded 80/20 split. Get the file with

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2
    # then, from the sdist: additional_resources/hutto_ICWSM_2014.tar.gz
    #   -> movieReviewSnippets_GroundTruth.txt

(it is in ../shared/data/movie-reviews/ next to this repository).

Two models with the same head (mean over tokens -> Dense(64, relu) ->
Dropout -> Dense(1, sigmoid)):
  - ELMo: `ElmoLayer(fine_tune="mix")`: the biLM is frozen, the scalar mix
    and the head train;
  - baseline: a randomly initialised, trainable 128-d word embedding.

Speed: with a frozen biLM and no layer norm, "mix, then average over tokens"
equals "average each biLM layer over tokens, then mix" (the mix is linear).
So the biLM runs once per sentence (`output_mode="dict"`), and a ScalarMix +
head trains on the per-layer averages: the same model as
`Sequential([ElmoTokenizer(), ElmoLayer(...), GlobalAveragePooling1D(), head])`
trained end to end (examples/export_classifier.py does that), many times
faster on a CPU.

    python examples/sentiment_classification.py [--limit 2000] [--epochs 20]
        [--options-file O --weight-file W] [--data PATH]
"""

import argparse
import time

import example_utils as eu
import keras
import numpy as np
import tensorflow as tf

from keras_elmo import ElmoTokenizer
from keras_elmo.scalar_mix import ScalarMix


def elmo_layer_means(elmo, texts, batch_size):
    """(N, n_layers + 1, 2P): each biLM layer averaged over each sentence's tokens."""
    tokenizer = ElmoTokenizer(mode="punctuation")
    run = tf.function(lambda x: elmo(tokenizer(x)), reduce_retracing=True)
    out = []
    for start in range(0, len(texts), batch_size):
        result = run(tf.constant(texts[start:start + batch_size]))
        word = result["word_emb"]
        layers = [tf.concat([word, word], -1)] + [
            result[f"lstm_outputs{k + 1}"] for k in range(elmo.n_lstm_layers)]
        n = tf.maximum(tf.cast(result["sequence_len"], tf.float32), 1.0)[:, None, None]
        out.append((tf.reduce_sum(tf.stack(layers, 1), axis=2) / n).numpy())
    return np.concatenate(out)


def head(x):
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.layers.Dense(1, activation="sigmoid")(x)


def fit_and_score(model, x_train, y_train, x_test, y_test, args):
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0, shuffle=True)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(eu.MOVIE_REVIEWS), help="default: %(default)s")
    parser.add_argument("--limit", type=int, default=2000,
                        help="use this many sentences (0: all 10,568)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    eu.add_model_args(parser)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    train_x, train_y, test_x, test_y = eu.read_movie_reviews(args.data, args.limit, seed=args.seed)
    print(f"{len(train_x)} training / {len(test_x)} test sentences, "
          f"{train_y.mean():.1%} positive in training")

    elmo = eu.load_elmo(args, output_mode="dict")
    start = time.perf_counter()
    feats_train = elmo_layer_means(elmo, train_x, args.batch_size)
    feats_test = elmo_layer_means(elmo, test_x, args.batch_size)
    print(f"biLM over all sentences once: {time.perf_counter() - start:.0f} s")
    # Standardize each feature with training statistics shared by all layers
    # (an affine map per feature commutes with the mix; the Dense absorbs it).
    mean = feats_train.mean(axis=(0, 1), keepdims=True)
    std = feats_train.std(axis=(0, 1), keepdims=True) + 1e-6
    feats_train, feats_test = (feats_train - mean) / std, (feats_test - mean) / std

    # ELMo: the scalar mix (trainable, as fine_tune="mix") + the head.
    inputs = keras.Input(shape=feats_train.shape[1:])
    layers = [inputs[:, k] for k in range(feats_train.shape[1])]
    mixed = ScalarMix(len(layers), name="scalar_mix")(layers)
    elmo_acc = fit_and_score(keras.Model(inputs, head(mixed)), feats_train, train_y, feats_test,
                             test_y, args)

    # Baseline: the same head on a trainable random word embedding.
    tokenizer = ElmoTokenizer(mode="punctuation")
    lookup = keras.layers.StringLookup(mask_token="")
    lookup.adapt(tokenizer(tf.constant(train_x)))
    text = keras.Input(shape=(), dtype="string")
    ids = lookup(tokenizer(text))
    embedded = keras.layers.Embedding(lookup.vocabulary_size(), 128, mask_zero=True)(ids)
    baseline = keras.Model(text, head(keras.layers.GlobalAveragePooling1D()(embedded)))
    base_acc = fit_and_score(baseline, tf.constant(train_x), train_y, tf.constant(test_x), test_y,
                             args)

    print(f"test accuracy, ELMo (frozen biLM, trained mix + head): {elmo_acc:.4f}")
    print(f"test accuracy, random trainable word embedding + head: {base_acc:.4f}")


if __name__ == "__main__":
    main()
