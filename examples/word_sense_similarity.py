"""Words in context: "bank" of a river vs a bank loan, as ELMo sees them.

For every occurrence of a target word in a small set of sentences (built in,
or one per line from --sentences-file, with the sense after a tab), this
  - finds the nearest other occurrences by cosine similarity and reports how
    often the nearest one has the same sense (leave-one-out 1-NN accuracy),
    for the ELMo vectors and for the context-free token vectors (the char CNN
    output, identical for every occurrence: chance level);
  - lists the nearest tokens to one occurrence among all tokens of all the
    sentences;
  - with --plot PATH, saves a 2-D PCA projection (numpy SVD) of the
    occurrences as a PNG (needs matplotlib: `pip install matplotlib`, or
    `pip install -e '.[examples]'` in the clone).

No data download needed.

    python examples/word_sense_similarity.py [--word bank] [--layer top]
        [--plot bank_senses.png] [--options-file O --weight-file W]
"""

import argparse
import os

import example_utils as eu


def parse_args(argv=None):
    """The arguments, checked before TensorFlow loads (one line, exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="bank")
    parser.add_argument("--sentences-file", help="lines 'sentence<TAB>sense' (default: built in)")
    parser.add_argument(
        "--layer",
        default="top",
        help="'top' (the top biLM layer), 'elmo' (equal mix), word_emb, lstm_outputs1, ...",
    )
    parser.add_argument(
        "--plot", default="", help="save a PCA plot as this PNG (needs matplotlib; default: none)"
    )
    eu.add_model_args(parser)
    args = eu.parse_checked(parser, argv)
    if args.sentences_file and not os.path.isfile(args.sentences_file):
        eu.fail(f"--sentences-file {args.sentences_file}: not found")
    if args.plot:
        eu.require_module(
            "matplotlib", "--plot", "pip install matplotlib (or -e '.[examples]' in the clone)"
        )
    return args


if __name__ == "__main__":
    ARGS = parse_args()  # before the slow imports

import numpy as np
import tensorflow as tf

from keras_elmo import ElmoTokenizer

SENTENCES = [
    ("We sat on the bank of the river and watched the boats .", "river"),
    ("The river overflowed its bank after the storm .", "river"),
    ("Fishermen lined the muddy bank of the stream .", "river"),
    ("The canoe drifted toward the far bank of the lake .", "river"),
    ("Willows grow along the east bank of the creek .", "river"),
    ("She climbed up the steep bank to get away from the water .", "river"),
    ("The soldiers crossed to the other bank of the river at dawn .", "river"),
    ("Grass covered the bank where the children played by the water .", "river"),
    ("I deposited my paycheck at the bank this morning .", "money"),
    ("The bank approved our loan for the new house .", "money"),
    ("He works as a teller at a bank downtown .", "money"),
    ("The central bank raised interest rates again .", "money"),
    ("She opened a savings account at the local bank .", "money"),
    ("The bank charged a fee for the wire transfer .", "money"),
    ("Robbers held up the bank and escaped with the cash .", "money"),
    ("Our bank offers lower mortgage rates than theirs .", "money"),
]


def read_sentences(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text, _, sense = line.rstrip("\n").partition("\t")
            if text.strip():
                out.append((text.strip(), sense.strip() or "?"))
    return out


def normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def one_nn_accuracy(vectors, senses):
    """Leave-one-out: how often the most similar other occurrence has the
    same sense; ties share the credit (identical vectors give chance level)."""
    sims = normalize(vectors) @ normalize(vectors).T
    np.fill_diagonal(sims, -np.inf)
    rates = []
    for i in range(len(senses)):
        ties = np.flatnonzero(sims[i] >= sims[i].max() - 1e-6)
        rates.append(np.mean([senses[i] == senses[j] for j in ties]))
    return float(np.mean(rates)), sims


def main(args):
    data = read_sentences(args.sentences_file) if args.sentences_file else SENTENCES
    elmo = eu.load_elmo(args, output_mode="dict")
    layer = f"lstm_outputs{elmo.n_lstm_layers}" if args.layer == "top" else args.layer
    tokens = ElmoTokenizer()(tf.constant([text for text, _ in data]))
    out = elmo(tokens)
    vectors, words = out[layer].numpy(), tokens.numpy()
    word_emb = out["word_emb"].numpy()

    occ, senses, context_free, where = [], [], [], []
    for i, (_, sense) in enumerate(data):
        for j, w in enumerate(words[i]):
            if w.decode().lower() == args.word.lower():
                occ.append(vectors[i, j])
                context_free.append(word_emb[i, j])
                senses.append(sense)
                where.append((i, j))
    if len(occ) < 2:
        raise SystemExit(f"fewer than two occurrences of {args.word!r} in the sentences")
    occ = np.array(occ)
    acc, sims = one_nn_accuracy(occ, senses)
    acc_free, _ = one_nn_accuracy(np.array(context_free), senses)

    print(f"{len(occ)} occurrences of {args.word!r}, layer {layer}")
    query = 0
    order = np.argsort(-sims[query])[:3]
    print(f"query: {data[where[query][0]][0]}")
    for k in order:
        print(f"  {sims[query, k]:.3f}  [{senses[k]}] {data[where[k][0]][0]}")
    # Nearest tokens (any word) to the query occurrence.
    flat = vectors.reshape(-1, vectors.shape[-1])
    flat_words = words.reshape(-1)
    real = (flat_words != b"") & (np.char.lower(flat_words.astype(str)) != args.word.lower())
    token_sims = normalize(flat[real]) @ normalize(occ[query])
    top = np.argsort(-token_sims)[:8]
    print(
        "nearest other tokens to the query occurrence: "
        + ", ".join(f"{flat_words[real][k].decode()} ({token_sims[k]:.2f})" for k in top)
    )

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        centered = occ - occ.mean(0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        xy = centered @ vt[:2].T
        fig, ax = plt.subplots(figsize=(6, 5))
        for sense in sorted(set(senses)):
            idx = [k for k, s in enumerate(senses) if s == sense]
            ax.scatter(xy[idx, 0], xy[idx, 1], label=sense)
        ax.set_title(f"'{args.word}' in context: PCA of ELMo ({layer})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"saved {args.plot}")
    print(f"context-free token vectors, 1-NN same-sense rate: {acc_free:.3f}")
    print(f"ELMo vectors ({layer}), 1-NN same-sense rate: {acc:.3f}")


if __name__ == "__main__":
    main(ARGS)
