"""Sentence sentiment with ELMo vs a trainable word embedding.

Data: movie-review sentences with a mean human rating in [-4, 4] (Pang & Lee
sentences rated for VADER). Label = sign of the rating, zeros dropped; a
fixed seeded 80/20 train/test split, and 10% of the training part (seeded)
held out as a validation set for early stopping. The full file (10,605
sentences) when it is found: get it from the source distribution of
vaderSentiment 3.3.2 (`pip download --no-deps --no-binary :all:
vaderSentiment==3.3.2`, then additional_resources/hutto_ICWSM_2014.tar.gz
-> movieReviewSnippets_GroundTruth.txt; docs/examples.md, "Data", says
where to put it); else the 707-sentence sample shipped in
examples/data/movie-reviews.

Three models, all through the same pooling and head (mean and max over the
real tokens, concatenated -> Dense(64, relu) -> Dropout(0.3) -> Dense(1,
sigmoid); Adam, batch 32, at most --epochs epochs, stopped on the validation
loss with patience 3 and the best weights restored; the test set is only
used for the final numbers):
  - ELMo alone: the frozen biLM (`ElmoLayer(output_mode="dict")`); each
    token is all three biLM layers (char-CNN word vector, lstm1, lstm2) side
    by side, the usual feature-based use of ELMo. The biLM is frozen, so the
    pooled vectors are computed once per sentence and standardized with
    training statistics;
  - baseline: a randomly initialised, trainable 128-d word embedding over the
    same punctuation tokenizer (vocabulary from the training part);
  - baseline + ELMo, the ELMo paper's recipe for adding ELMo to a task
    model: the baseline's embedding with each token's ELMo vector
    concatenated to it before the pooling. The ELMo vector is a learned
    scalar mix (`keras_elmo.ScalarMix`, softmax weights and a scale, as in
    `ElmoLayer(fine_tune="mix")`) of the three biLM layers, each
    standardized per feature with training statistics, with dropout
    --elmo-dropout. Of the ELMo part only the mix trains, so the frozen
    biLM's layers are computed once per token and the mix trains on them
    (the embedding and the head train as in the baseline).
--train-seeds repeats the three trainings once per seed (each model's
initialisation, dropout and shuffling; the split stays that of --seed) and
prints each seed's test accuracies and their mean. The default run (one
seed) takes about 1.5 minutes on 2 CPU cores for the full file, each
further seed about 1.5.

With --fine-tune-epochs N a fourth model fine-tunes the whole biLM end to
end (`ElmoLayer(fine_tune="all")`, raw sentences in) with the first model's
pooling, standardization and head, the head starting from that model's
(first seed), Adam at --fine-tune-learning-rate, at most N epochs, stopped
on the validation loss (patience 1). It is slow (about 3.5 minutes an epoch
on one CPU core for the full data) and, with the small shipped biLM, does
not catch up with the baseline (docs/examples.md).

    python examples/sentiment_classification.py [--limit 0] [--epochs 40]
        [--train-seeds 0] [--elmo-dropout 0.5] [--fine-tune-epochs 0]
        [--options-file O --weight-file W] [--data PATH]
"""

import argparse
import time

import example_utils as eu


def parse_args(argv=None):
    """The arguments, checked before TensorFlow loads (one line, exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    eu.add_data_arg(parser, "movie-reviews")
    parser.add_argument(
        "--limit", type=int, default=0, help="use this many sentences (default 0: all)"
    )
    parser.add_argument("--epochs", type=int, default=40, help="at most (early stopping)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64, help="for the biLM pass")
    parser.add_argument("--seed", type=int, default=0, help="the data split")
    parser.add_argument(
        "--train-seeds",
        default="0",
        help="comma-separated seeds of the models' initialisation, dropout and "
        "shuffling (default: %(default)s); the split stays that of --seed",
    )
    parser.add_argument(
        "--elmo-dropout",
        type=float,
        default=0.5,
        help="dropout on the ELMo vector of the baseline + ELMo model",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="also fine-tune the whole biLM for at most this many epochs (default 0: no; slow)",
    )
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-3)
    eu.add_model_args(parser)
    args = eu.parse_checked(parser, argv, data="movie-reviews")
    try:
        args.train_seeds = [int(s) for s in args.train_seeds.split(",")]
    except ValueError:
        eu.fail(f"--train-seeds must be comma-separated integers, got {args.train_seeds!r}")
    return args


if __name__ == "__main__":
    ARGS = parse_args()  # before the slow imports

import keras
import numpy as np
import tensorflow as tf

from keras_elmo import ElmoTokenizer, ScalarMix


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
        return tf.concat(
            [word, word] + [result[f"lstm_outputs{k + 1}"] for k in range(self.elmo.n_lstm_layers)],
            -1,
        )

    def compute_mask(self, tokens, mask=None):
        return keras.ops.not_equal(tokens, "")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], 2 * (self.elmo.n_lstm_layers + 1) * self.elmo.projection_dim)


class LayerMix(keras.layers.Layer):
    """(batch, T, n_layers, 2P) cached biLM layers -> their `ScalarMix`
    (batch, T, 2P), the mix `ElmoLayer(fine_tune="mix")` trains."""

    def __init__(self, n_layers, **kwargs):
        super().__init__(**kwargs)
        self.mix = ScalarMix(n_layers)

    def build(self, input_shape):
        self.mix.build()

    def call(self, layers):
        return self.mix([layers[:, :, k] for k in range(self.mix.n_layers)])


def elmo_features(elmo, texts, batch_size):
    """The frozen biLM over `texts`, once: (pooled (N, 2 * n * 2P): mean and
    max over each sentence's tokens of every layer side by side; layers, a
    ragged (N, None, n, 2P): every layer of every token), n = n_layers + 1,
    the word layer duplicated to 2P as in ELMo."""
    tokenizer = ElmoTokenizer(mode="punctuation")
    layers, pool = ElmoAllLayers(elmo), MeanMaxPooling()
    n = elmo.n_lstm_layers + 1

    def run(texts):
        tokens = tokenizer(texts)
        mask = layers.compute_mask(tokens)
        values = layers(tokens)
        per_layer = tf.reshape(values, tf.concat([tf.shape(values)[:2], [n, -1]], 0))
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), 1)
        return pool(values, mask=mask), tf.RaggedTensor.from_tensor(per_layer, lengths=lengths)

    run = tf.function(run, reduce_retracing=True)
    pooled, ragged = zip(
        *(
            run(tf.constant(texts[start : start + batch_size]))
            for start in range(0, len(texts), batch_size)
        )
    )
    return np.concatenate([p.numpy() for p in pooled]), tf.concat(ragged, axis=0)


def standardize(train, test, fit_rows):
    """Every token's layers standardized per feature with the statistics of
    the tokens of the training sentences `fit_rows`."""
    fit = tf.gather(train, fit_rows).flat_values.numpy()
    mean, std = fit.mean(0), fit.std(0) + 1e-6
    return tuple(x.with_flat_values((x.flat_values - mean) / std) for x in (train, test))


def head(x):
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.layers.Dense(1, activation="sigmoid")(x)


def token_dataset(ids, layers, labels, rows, seed=None, batch_size=32):
    """Sentences `rows` as padded batches of ((ids, layers), label); shuffled
    each epoch when `seed` is given."""
    rows = tf.constant(rows)
    data = tf.data.Dataset.from_tensor_slices(
        ((tf.gather(ids, rows), tf.gather(layers, rows)), labels[rows.numpy()])
    )
    if seed is not None:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return data.ragged_batch(batch_size).map(lambda x, y: ((x[0].to_tensor(), x[1].to_tensor()), y))


def fit_and_score(build, train, val, test, args, seed, learning_rate=None, epochs=None, patience=3):
    """Build a model with `build()` and train it with early stopping on the
    validation loss, everything random (initialisation, dropout, shuffling)
    seeded by `seed`; returns (test accuracy, best epoch, validation
    accuracy, model). train/val/test: (x, y) pairs, or datasets of batches."""
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate or args.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)
    if isinstance(train, tf.data.Dataset):  # batched and shuffled by the dataset
        history = model.fit(
            train,
            validation_data=val,
            epochs=epochs or args.epochs,
            shuffle=False,  # the dataset shuffles itself
            verbose=0,
            callbacks=[stop],
        )
        scored = model.evaluate(test, verbose=0)
    else:
        history = model.fit(
            *train,
            validation_data=val,
            epochs=epochs or args.epochs,
            batch_size=32,
            shuffle=True,
            verbose=0,
            callbacks=[stop],
        )
        scored = model.evaluate(*test, verbose=0)
    best = int(np.argmin(history.history["val_loss"]))
    return scored[1], best + 1, history.history["val_accuracy"][best], model


def main(args):
    seeds = args.train_seeds
    keras.utils.set_random_seed(args.seed)

    train_x, train_y, test_x, test_y = eu.read_movie_reviews(args.data, args.limit, seed=args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(len(train_x))
    val_idx, fit_idx = order[: len(order) // 10], order[len(order) // 10 :]
    print(
        f"{len(fit_idx)} training / {len(val_idx)} validation / {len(test_x)} test "
        f"sentences, {train_y.mean():.1%} positive in training"
    )

    elmo = eu.load_elmo(args, output_mode="dict")
    start = time.perf_counter()
    feats_train, layers_train = elmo_features(elmo, train_x, args.batch_size)
    feats_test, layers_test = elmo_features(elmo, test_x, args.batch_size)
    print(f"biLM over all sentences once: {time.perf_counter() - start:.0f} s")
    mean = feats_train[fit_idx].mean(0)
    std = feats_train[fit_idx].std(0) + 1e-6
    feats_train, feats_test = (feats_train - mean) / std, (feats_test - mean) / std
    layers_train, layers_test = standardize(layers_train, layers_test, fit_idx)

    tokenizer = ElmoTokenizer(mode="punctuation")
    lookup = keras.layers.StringLookup(mask_token="")
    lookup.adapt(tokenizer(tf.constant([train_x[i] for i in fit_idx])))
    ids_train = lookup(tokenizer(tf.constant(train_x))).numpy()
    ids_test = lookup(tokenizer(tf.constant(test_x))).numpy()
    for ids, layers in ((ids_train, layers_train), (ids_test, layers_test)):
        # The biLM pass tokenized in batches, the lookup all at once: the
        # same tokenizer, so every sentence must have as many ids as layers.
        if not np.array_equal((ids != 0).sum(1), layers.row_lengths().numpy()):
            raise RuntimeError("token ids and biLM layers disagree on sentence lengths")
    n_layers, width = layers_train.shape[2], layers_train.shape[3]
    ragged_train = tf.RaggedTensor.from_tensor(ids_train, lengths=layers_train.row_lengths())
    ragged_test = tf.RaggedTensor.from_tensor(ids_test, lengths=layers_test.row_lengths())
    val_tokens = token_dataset(ragged_train, layers_train, train_y, val_idx)
    test_tokens = token_dataset(ragged_test, layers_test, test_y, np.arange(len(test_x)))

    def elmo_alone():
        inputs = keras.Input(shape=feats_train.shape[1:])
        return keras.Model(inputs, head(inputs))

    def embedding_alone():
        ids = keras.Input(shape=(None,), dtype="int64")
        embedded = keras.layers.Embedding(lookup.vocabulary_size(), 128, mask_zero=True)(ids)
        return keras.Model(ids, head(MeanMaxPooling()(embedded)))

    def embedding_plus_elmo():
        # The ELMo paper's recipe: [embedding; ELMo] for every token, then the
        # same pooling and head.
        ids = keras.Input(shape=(None,), dtype="int64")
        layers = keras.Input(shape=(None, n_layers, width))
        embedded = keras.layers.Embedding(lookup.vocabulary_size(), 128)(ids)
        elmo_vectors = keras.layers.Dropout(args.elmo_dropout)(LayerMix(n_layers)(layers))
        tokens = keras.layers.Concatenate()([embedded, elmo_vectors])
        pooled = MeanMaxPooling()(tokens, mask=keras.ops.not_equal(ids, 0))
        return keras.Model([ids, layers], head(pooled))

    def splits(x_train, x_test):
        """(fit, validation, test) pairs of inputs and labels."""
        fit = (x_train[fit_idx], train_y[fit_idx])
        return fit, (x_train[val_idx], train_y[val_idx]), (x_test, test_y)

    results = {name: [] for name in ("elmo", "embedding", "both")}
    for seed in seeds:
        runs = {
            "elmo": (elmo_alone, *splits(feats_train, feats_test)),
            "embedding": (embedding_alone, *splits(ids_train, ids_test)),
            "both": (
                embedding_plus_elmo,
                token_dataset(ragged_train, layers_train, train_y, fit_idx, seed=seed),
                val_tokens,
                test_tokens,
            ),
        }
        for name, (build, fit_data, val_data, test_data) in runs.items():
            results[name].append(fit_and_score(build, fit_data, val_data, test_data, args, seed))
        print(
            f"seed {seed}: test accuracy: ELMo alone {results['elmo'][-1][0]:.4f}, "
            f"embedding {results['embedding'][-1][0]:.4f}, "
            f"embedding + ELMo {results['both'][-1][0]:.4f}",
            flush=True,
        )

    if args.fine_tune_epochs:
        start = time.perf_counter()
        frozen = results["elmo"][0][3]  # ELMo alone, first seed

        def fine_tuned():
            tuned_elmo = eu.load_elmo(args, output_mode="dict", fine_tune="all")
            sentences = keras.Input(shape=(), dtype="string")
            pooled = MeanMaxPooling()(
                ElmoAllLayers(tuned_elmo)(ElmoTokenizer(mode="punctuation")(sentences))
            )
            pooled = keras.layers.Normalization(mean=mean, variance=std**2)(pooled)
            tuned = keras.Model(sentences, head(pooled))
            for k in (-3, -1):  # the two Dense layers, from the frozen ELMo-alone model
                tuned.layers[k].set_weights(frozen.layers[k].get_weights())
            return tuned

        texts = np.array(train_x, dtype=object)
        results["tuned"] = [
            fit_and_score(
                fine_tuned,
                (texts[fit_idx], train_y[fit_idx]),
                (texts[val_idx], train_y[val_idx]),
                (np.array(test_x, dtype=object), test_y),
                args,
                seeds[0],
                learning_rate=args.fine_tune_learning_rate,
                epochs=args.fine_tune_epochs,
                patience=1,
            )
        ]
        print(f"fine-tuning: {time.perf_counter() - start:.0f} s")

    names = {
        "elmo": "ELMo alone (frozen biLM, all layers, mean+max) + head",
        "embedding": "random trainable word embedding (mean+max) + head",
        "both": "embedding + ELMo (learned scalar mix, per token; mean+max) + head",
        "tuned": "ELMo alone, whole biLM fine-tuned (all layers, mean+max) + head",
    }
    for key, runs in results.items():
        test = " ".join(f"{r[0]:.4f}" for r in runs)
        val = " ".join(f"{r[2]:.4f}" for r in runs)
        epochs = " ".join(str(r[1]) for r in runs)
        print(
            f"{names[key]}: test accuracy {np.mean([r[0] for r in runs]):.4f}"
            + (f" (mean of {test})" if len(runs) > 1 else "")
            + f"; validation {val}; best epoch {epochs}"
        )
    if len(seeds) > 1:
        gains = [b[0] - e[0] for b, e in zip(results["both"], results["embedding"])]
        print(
            f"embedding + ELMo minus embedding, per seed: "
            f"{' '.join(f'{g:+.4f}' for g in gains)}; higher in {sum(g > 0 for g in gains)} "
            f"of {len(gains)} seeds"
        )


if __name__ == "__main__":
    main(ARGS)
