"""Error of the lower-precision path (`matmul_dtype`) against float32.

    python benchmarks/low_precision_error.py [--sentences 256] [--batch-size 32]

For each model (the bilm-tf fixture in tests/fixtures/bilm-tf, the
shipped saved_models/elmo-small-en, and the published "original" size with
random weights written and loaded back in the original format) the same
seeded Brown sentences (benchmarks/bench_elmo.make_sentences) run through
ElmoLayer with float32, bfloat16 and float16 operands in the model's matmuls
and convolutions (`matmul_dtype`).
Reported per output, over all real tokens: relative error
||low - f32|| / ||f32|| and the largest absolute difference, plus how often a
token's ELMo vector (the default mix) has cosine similarity below 0.999 to
the float32 one. Speed: `bench_elmo.py --matmul-dtype bfloat16`.
"""

import argparse
import datetime
import os
import sys
import tempfile

import numpy as np
from _results import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from bench_elmo import hardware, make_sentences  # noqa: E402
from support.bilm_fixture import OPTIONS_FILE, WEIGHT_FILE  # noqa: E402

from keras_elmo.options import MATMUL_DTYPES as DTYPES  # noqa: E402  (float32 first)

KEYS = ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo")


def run(layer_args, sentences, batch_size):
    import tensorflow as tf

    import keras_elmo

    outputs = {}
    for dtype in DTYPES:
        layer = keras_elmo.ElmoLayer.from_original(
            *layer_args, output_mode="dict", matmul_dtype=dtype
        )
        call = tf.function(layer.__call__, reduce_retracing=True)
        per_key = {k: [] for k in KEYS}
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start : start + batch_size]
            out = call(tf.constant(keras_elmo.batch_to_ids(batch, layer.max_chars)))
            for key in KEYS:
                per_key[key].extend(out[key][i, : len(s)].numpy() for i, s in enumerate(batch))
        outputs[dtype] = {k: np.concatenate(v) for k, v in per_key.items()}
    rows = []
    ref = outputs["float32"]
    for dtype in DTYPES[1:]:
        got = outputs[dtype]
        row = {"dtype": dtype}
        for key in KEYS:
            diff = got[key] - ref[key]
            row[key] = (np.linalg.norm(diff) / np.linalg.norm(ref[key]), np.abs(diff).max())
        a, b = got["elmo"], ref["elmo"]
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)
        row["low_cos"] = float((cos < 0.999).mean())
        row["min_cos"] = float(cos.min())
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import keras

    import keras_elmo

    sentences, source = make_sentences(args.sentences, args.seed)
    models = []
    models.append(("bilm-tf fixture", (str(OPTIONS_FILE), str(WEIGHT_FILE))))
    shipped = os.path.join(REPO, "saved_models", "elmo-small-en")
    models.append(
        (
            "shipped elmo-small-en",
            (os.path.join(shipped, "options.json"), os.path.join(shipped, "weights.hdf5")),
        )
    )
    tmp = tempfile.mkdtemp(prefix="keras_elmo_lowp_")
    keras.utils.set_random_seed(args.seed)
    original = keras_elmo.ElmoLayer(keras_elmo.published_options("original"))
    paths = (os.path.join(tmp, "options.json"), os.path.join(tmp, "weights.hdf5"))
    original.save_original(*paths)
    del original
    models.append(("original size, random weights", paths))

    command = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "### low_precision_error",
        "",
        f"- hardware: {hardware()}",
        f"- text: {args.sentences} {source}; batch {args.batch_size}",
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/low_precision_error.py {command}`".rstrip(),
        "",
        "| model | matmul operands | word_emb rel / max abs | lstm_outputs1 rel / max abs "
        "| lstm_outputs2 rel / max abs "
        "| elmo rel / max abs | tokens with cos < 0.999 | min cos |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    for name, layer_args in models:
        for row in run(layer_args, sentences, args.batch_size):
            cells = " | ".join(f"{row[k][0]:.1e} / {row[k][1]:.1e}" for k in KEYS)
            lines.append(
                f"| {name} | {row['dtype']} | {cells} | {100 * row['low_cos']:.2f}% "
                f"| {row['min_cos']:.5f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    write_table(lines, os.path.join(HERE, "results", "low_precision_error.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
