"""Sentence sentiment with ELMo vs a trainable word embedding.

Data: movie-review sentences with a mean human rating in [-4, 4] (Pang & Lee
sentences rated for VADER). Label = sign of the rating, zeros dropped; a
fixed seeded 80/20 train/test split, and 10% of the training part (seeded)
held out as a validation set for early stopping. Get the file with

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2
    # then, from the sdist: additional_resources/hutto_ICWSM_2014.tar.gz
    #   -> movieReviewSnippets_GroundTruth.txt

(it is in ../shared/data/movie-reviews/ next to this repository).

Two models that differ only in where the token vectors come from:
  - ELMo: the frozen biLM (`ElmoLayer(output_mode="dict")`); each token is
    all three biLM layers (char-CNN word vector, lstm1, lstm2) side by side,
    the usual feature-based use of ELMo (the Dense below can learn any
    scalar mix of them, and more). The biLM is frozen, so these vectors are
    computed once per sentence, in batches, and standardized with training
    statistics;
  - baseline: a randomly initialised, trainable 128-d word embedding over the
    same punctuation tokenizer (vocabulary from the training part).
Both then go through the same pooling and head: mean and max over the real
tokens, concatenated -> Dense(64, relu) -> Dropout(0.3) -> Dense(1, sigmoid),
trained with Adam (batch 32) for up to --epochs epochs, stopped on the
validation loss (patience 3, best weights restored). The test set is only
used for the final numbers. About 2 minutes on one CPU core.

With --fine-tune-epochs N a third model fine-tunes the whole biLM end to
end (`ElmoLayer(fine_tune="all")`, raw sentences in): the same pooling,
standardization and head, the head starting from the frozen ELMo model's,
Adam at --fine-tune-learning-rate, at most N epochs, stopped on the
validation loss (patience 1). It is slow (about 3.5 minutes an epoch on
one CPU core for the full data) and, with the small shipped biLM, it does
not catch up with the baseline: with --fine-tune-epochs 3, validation
accuracy 0.67 (best epoch 2) against 0.76 for the baseline (0.63 for the
frozen biLM); about 12 minutes on one core in all.

With --elmo-plus-embedding a fourth model is the baseline with the frozen
ELMo features concatenated to its pooled embedding (the ELMo paper adds ELMo
to a task model's own word vectors this way); --train-seed changes only the
heads' initialisation and shuffling, not the split.

    python examples/sentiment_classification.py [--limit 0] [--epochs 40]
        [--fine-tune-epochs 0] [--elmo-plus-embedding] [--train-seed S]
        [--options-file O --weight-file W] [--data PATH]
"""

import argparse
import time

import example_utils as eu
import keras
import numpy as np
import tensorflow as tf

from keras_elmo import ElmoTokenizer


class MeanMaxPooling(keras.layers.Layer):
    """Mean and max over the unmasked time steps, concatenated (every arm's
    pooling)."""

    def call(self, x, mask=None):
        m = keras.ops.cast(mask, x.dtype)[..., None]
        mean = keras.ops.sum(x * m, 1) / keras.ops.maximum(keras.ops.sum(m, 1), 1.0)
        maximum = keras.ops.max(x * m - 1e9 * (1.0 - m), 1)
        maximum = maximum * keras.ops.cast(keras.ops.sum(m, 1) > 0, x.dtype)
        return keras.ops.concatenate([mean, maximum], -1)

    def compute_mask(self, inputs, mask=None):
        return None


class ElmoAllLayers(keras.layers.Layer):
    """String tokens (batch, T) -> every biLM layer side by side (the word
    layer duplicated to 2P, as in ELMo), masked; trains the
    `ElmoLayer` it wraps as far as its `fine_tune` allows."""

    def __init__(self, elmo, **kwargs):
        super().__init__(**kwargs)
        self.elmo = elmo

    def call(self, tokens, training=None):
        result = self.elmo(tokens, training=training)
        word = result["word_emb"]
        return tf.concat([word, word] + [result[f"lstm_outputs{k + 1}"]
                                         for k in range(self.elmo.n_lstm_layers)], -1)

    def compute_mask(self, tokens, mask=None):
        return keras.ops.not_equal(tokens, "")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], 2 * (self.elmo.n_lstm_layers + 1) * self.elmo.projection_dim)


def elmo_pooled(elmo, texts, batch_size):
    """(N, 2 * (n_layers + 1) * 2P): mean and max over each sentence's tokens
    of every biLM layer (the word layer duplicated to 2P, as in ELMo)."""
    tokenizer = ElmoTokenizer(mode="punctuation")
    layers, pool = ElmoAllLayers(elmo), MeanMaxPooling()

    def pooled(texts):
        tokens = tokenizer(texts)
        return pool(layers(tokens), mask=layers.compute_mask(tokens))

    run = tf.function(pooled, reduce_retracing=True)
    return np.concatenate([run(tf.constant(texts[start:start + batch_size])).numpy()
                           for start in range(0, len(texts), batch_size)])


def head(x):
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.layers.Dense(1, activation="sigmoid")(x)


def fit_and_score(model, train, val, test, args, learning_rate=None, epochs=None, patience=3):
    """Train with early stopping on the validation loss; (test accuracy,
    best epoch, validation accuracy)."""
    keras.utils.set_random_seed(args.seed if args.train_seed is None else args.train_seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate or args.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)
    history = model.fit(*train, validation_data=val, epochs=epochs or args.epochs, batch_size=32,
                        verbose=0, shuffle=True, callbacks=[stop])
    best = int(np.argmin(history.history["val_loss"]))
    return (model.evaluate(*test, verbose=0)[1], best + 1,
            history.history["val_accuracy"][best])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(eu.MOVIE_REVIEWS), help="default: %(default)s")
    parser.add_argument("--limit", type=int, default=0,
                        help="use this many sentences (default 0: all 10,568)")
    parser.add_argument("--epochs", type=int, default=40, help="at most (early stopping)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64, help="for the biLM pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fine-tune-epochs", type=int, default=0,
                        help="also fine-tune the whole biLM for at most this many epochs "
                             "(default 0: no; slow)")
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-3)
    parser.add_argument("--elmo-plus-embedding", action="store_true",
                        help="also train the baseline with the frozen ELMo features concatenated")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="seed of the heads' initialisation and shuffling (default: --seed); "
                             "the split stays that of --seed")
    eu.add_model_args(parser)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    train_x, train_y, test_x, test_y = eu.read_movie_reviews(args.data, args.limit, seed=args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(len(train_x))
    val_idx, fit_idx = order[:len(order) // 10], order[len(order) // 10:]
    print(f"{len(fit_idx)} training / {len(val_idx)} validation / {len(test_x)} test "
          f"sentences, {train_y.mean():.1%} positive in training")

    elmo = eu.load_elmo(args, output_mode="dict")
    start = time.perf_counter()
    feats_train = elmo_pooled(elmo, train_x, args.batch_size)
    feats_test = elmo_pooled(elmo, test_x, args.batch_size)
    print(f"biLM over all sentences once: {time.perf_counter() - start:.0f} s")
    mean = feats_train[fit_idx].mean(0)
    std = feats_train[fit_idx].std(0) + 1e-6
    feats_train, feats_test = (feats_train - mean) / std, (feats_test - mean) / std

    inputs = keras.Input(shape=feats_train.shape[1:])
    frozen = keras.Model(inputs, head(inputs))
    elmo_acc, elmo_epochs, elmo_val = fit_and_score(
        frozen,
        (feats_train[fit_idx], train_y[fit_idx]), (feats_train[val_idx], train_y[val_idx]),
        (feats_test, test_y), args)

    tokenizer = ElmoTokenizer(mode="punctuation")
    lookup = keras.layers.StringLookup(mask_token="")
    lookup.adapt(tokenizer(tf.constant([train_x[i] for i in fit_idx])))
    ids_train = lookup(tokenizer(tf.constant(train_x))).numpy()
    ids_test = lookup(tokenizer(tf.constant(test_x))).numpy()
    ids = keras.Input(shape=(None,), dtype="int64")
    embedded = keras.layers.Embedding(lookup.vocabulary_size(), 128, mask_zero=True)(ids)
    base_acc, base_epochs, base_val = fit_and_score(
        keras.Model(ids, head(MeanMaxPooling()(embedded))),
        (ids_train[fit_idx], train_y[fit_idx]), (ids_train[val_idx], train_y[val_idx]),
        (ids_test, test_y), args)

    if args.elmo_plus_embedding:
        # The ELMo paper's recipe: ELMo concatenated to the task's own token
        # vectors. Mean and max pool feature by feature, so pooling the
        # concatenation is concatenating the pooled parts.
        ids = keras.Input(shape=(None,), dtype="int64")
        embedded = keras.layers.Embedding(lookup.vocabulary_size(), 128, mask_zero=True)(ids)
        feats = keras.Input(shape=feats_train.shape[1:])
        both = keras.layers.Concatenate()([MeanMaxPooling()(embedded), feats])
        plus_acc, plus_epochs, plus_val = fit_and_score(
            keras.Model([ids, feats], head(both)),
            ([ids_train[fit_idx], feats_train[fit_idx]], train_y[fit_idx]),
            ([ids_train[val_idx], feats_train[val_idx]], train_y[val_idx]),
            ([ids_test, feats_test], test_y), args)

    if args.fine_tune_epochs:
        start = time.perf_counter()
        tuned_elmo = eu.load_elmo(args, output_mode="dict", fine_tune="all")
        sentences = keras.Input(shape=(), dtype="string")
        pooled = MeanMaxPooling()(ElmoAllLayers(tuned_elmo)(
            ElmoTokenizer(mode="punctuation")(sentences)))
        pooled = keras.layers.Normalization(mean=mean, variance=std ** 2)(pooled)
        tuned = keras.Model(sentences, head(pooled))
        for k in (-3, -1):  # the two Dense layers, from the frozen ELMo model
            tuned.layers[k].set_weights(frozen.layers[k].get_weights())
        texts = np.array(train_x, dtype=object)
        tuned_acc, tuned_epochs, tuned_val = fit_and_score(
            tuned, (texts[fit_idx], train_y[fit_idx]), (texts[val_idx], train_y[val_idx]),
            (np.array(test_x, dtype=object), test_y), args,
            learning_rate=args.fine_tune_learning_rate, epochs=args.fine_tune_epochs, patience=1)
        print(f"fine-tuning: {time.perf_counter() - start:.0f} s")

    print(f"ELMo (frozen biLM, all layers, mean+max) + head: validation {elmo_val:.4f} "
          f"(best epoch {elmo_epochs}), test accuracy {elmo_acc:.4f}")
    print(f"random trainable word embedding (mean+max) + head: validation {base_val:.4f} "
          f"(best epoch {base_epochs}), test accuracy {base_acc:.4f}")
    if args.elmo_plus_embedding:
        print(f"random trainable word embedding + frozen ELMo (mean+max) + head: validation "
              f"{plus_val:.4f} (best epoch {plus_epochs}), test accuracy {plus_acc:.4f}")
    if args.fine_tune_epochs:
        print(f"ELMo (whole biLM fine-tuned, all layers, mean+max) + head: validation "
              f"{tuned_val:.4f} (best epoch {tuned_epochs}), test accuracy {tuned_acc:.4f}")


if __name__ == "__main__":
    main()
