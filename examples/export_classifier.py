"""Fine-tune a raw-text sentiment classifier and export it as a SavedModel.

The model takes raw sentences and returns P(positive):

    keras.Sequential([keras.Input(shape=(), dtype="string"),
                      ElmoTokenizer(mode="punctuation"), ElmoLayer(fine_tune="mix"),
                      GlobalAveragePooling1D(), Dense(64, relu), Dense(1, sigmoid)])

It trains end to end with `model.fit` on raw strings (a subset of the movie
review sentences: of the full file when it is found, see
examples/sentiment_classification.py and "Data" in docs/examples.md, else
of the 707-sentence sample in examples/data/movie-reviews), is saved as one .keras
file, and is exported with `keras.export.ExportArchive` as a SavedModel with
a string input signature. The SavedModel is reloaded with plain
`tf.saved_model.load` (no keras_elmo needed: the tokenizer's "punctuation"
mode uses core TensorFlow ops only) and its predictions are printed next to
the Keras model's. (For the ELMo vectors themselves rather than a classifier,
see `keras_elmo.serving.export.export_saved_model`.)

    python examples/export_classifier.py [--export-dir /tmp/elmo_sentiment]
        [--train-sentences 400] [--epochs 2] [--options-file O --weight-file W]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import example_utils as eu


def parse_args(argv=None):
    """The arguments, checked before TensorFlow loads (one line, exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    eu.add_data_arg(parser, "movie-reviews")
    parser.add_argument(
        "--export-dir", default=os.path.join(tempfile.gettempdir(), "elmo_sentiment")
    )
    eu.add_training_args(
        parser, train_sentences=400, test_sentences=200, epochs=2, learning_rate=3e-3
    )
    return eu.parse_checked(parser, argv, data="movie-reviews")


if __name__ == "__main__":
    ARGS = parse_args()  # before the slow imports

import keras
import numpy as np
import tensorflow as tf

from keras_elmo import ElmoTokenizer

EXAMPLES = [
    "A gorgeous, witty and moving film.",
    "Dull, lifeless and far too long.",
    "The plot is thin but the acting is wonderful.",
]


def main(args):
    keras.utils.set_random_seed(args.seed)

    limit = args.train_sentences + args.test_sentences
    train_x, train_y, test_x, test_y = eu.read_movie_reviews(
        args.data, limit, test_fraction=args.test_sentences / limit, seed=args.seed
    )
    model = keras.Sequential(
        [
            keras.Input(shape=(), dtype="string", name="text"),
            ElmoTokenizer(mode="punctuation"),
            eu.load_elmo(args, fine_tune="mix", dropout=0.2),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    train = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=args.seed)
        .batch(32)
    )
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=2, shuffle=False)
    print(f"training took {time.perf_counter() - start:.0f} s")
    test = tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(64)
    accuracy = model.evaluate(test, verbose=0)[1]

    os.makedirs(args.export_dir, exist_ok=True)
    keras_file = os.path.join(args.export_dir, "classifier.keras")
    model.save(keras_file)
    saved_model_dir = os.path.join(args.export_dir, "saved_model")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda text: model(text, training=False),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    archive.write_out(saved_model_dir, verbose=False)

    expected = model.predict(tf.constant(EXAMPLES), verbose=0)[:, 0]
    # Reload in a fresh process with TensorFlow only, as a server would.
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        loaded = tf.saved_model.load({saved_model_dir!r})
        print(json.dumps(loaded.serve(tf.constant({EXAMPLES!r}))[:, 0].numpy().tolist()))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"reloading the SavedModel failed:\n{out.stderr[-2000:]}")
    served = np.array(json.loads(out.stdout.strip().splitlines()[-1]), "float32")
    print(f"saved {keras_file} and the SavedModel {saved_model_dir}")
    for text, p_keras, p_served in zip(EXAMPLES, expected, served):
        print(f"  P(positive) = {p_served:.4f} (Keras {p_keras:.4f})  {text}")
    print(f"max |SavedModel - Keras| = {np.abs(served - expected).max():.2e}")
    print(f"test accuracy of the fine-tuned classifier ({len(test_x)} sentences): {accuracy:.4f}")


if __name__ == "__main__":
    main(ARGS)
