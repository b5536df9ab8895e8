"""Evaluate a trained biLM: held-out perplexity vs a unigram model, and POS tagging.

    python examples/evaluate_shipped_model.py --model-dir OUT --splits-dir SPLITS \
        --data-dir DATA [--json results.json]

examples/train_shipped_model.sh writes OUT and SPLITS and runs this; DATA is
the folder of the full corpora (docs/examples.md, "Data"; the sample in
examples/data is too small for it).

MODEL_DIR needs options.json, weights.hdf5 and vocab.txt; the perplexity part
also needs softmax.npz (written by `keras-elmo train` next to weights.hdf5; it
is not part of the published format). SPLITS_DIR is what
`python examples/corpora.py DATA SPLITS` wrote.

(a) Perplexity: forward, backward and average (exp of the mean of the two
    per-token losses) with the full softmax on the held-out Brown files (every
    10th file) and the held-out SOTU addresses (2010 on). Targets are
    `w1 .. wn </S>` forward and `<S> w1 .. wn` backward; out-of-vocabulary
    words are scored as `<UNK>`; lines longer than 50 tokens are cut into
    pieces, as in training. The unigram baseline uses the training-split
    counts mapped onto the same vocabulary (OOV counts go to `<UNK>`; `</S>`
    / `<S>` counted once per piece), scored on exactly the same targets.
(b) POS tagging (contextual gain): a single dense softmax layer on frozen
    features, trained on 3000 sentences from Brown training files and tested
    on 1000 sentences from the held-out Brown files. Tags are simplified:
    `-tl`, `-hl`, `-nc`, `-fw` parts and `*`/`$` are stripped and the first
    two letters kept (`nn-tl` -> `nn`, `vbd` -> `vb`); punctuation tags are
    kept. Features: (1) ELMo: the concatenation of all layers (word_emb, and
    each LSTM layer's [forward, backward]); (2) the context-free layer 0
    (word_emb) only; (3) the top LSTM layer only.
"""

import argparse
import collections
import glob
import json
import math
import os
import sys
import time

import example_utils as eu
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
SPLITS = ("heldout_brown", "heldout_sotu")


def parse_args(argv=None):
    """The arguments, checked before TensorFlow loads (one line, exit 2)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--splits-dir", required=True)
    p.add_argument("--data-dir", required=True, help="the full corpora (its brown/ is read)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--pos-train", type=int, default=3000)
    p.add_argument("--pos-test", type=int, default=1000)
    p.add_argument("--skip-perplexity", action="store_true")
    args = p.parse_args(argv)
    model_files = ["options.json", "weights.hdf5", "vocab.txt"]
    needed = [os.path.join(args.model_dir, name) for name in model_files]
    if not args.skip_perplexity:
        needed += [os.path.join(args.model_dir, "softmax.npz")]
        needed += [os.path.join(args.splits_dir, f"{n}.txt") for n in SPLITS]
    needed.append(os.path.join(args.data_dir, "brown"))
    missing = [path for path in needed if not os.path.exists(path)]
    if missing:
        eu.fail(
            f"{missing[0]}: not found (examples/train_shipped_model.sh writes the model "
            f"and splits from the full corpora; {eu.HOW_TO_GET})"
        )
    return args


if __name__ == "__main__":
    ARGS = parse_args()  # before the slow imports

import corpora
import keras
import tensorflow as tf

from keras_elmo import ElmoLayer, batch_to_ids
from keras_elmo.training import data, model_dir, trainer

MAX_LEN = 50


def pieces(path, max_len=MAX_LEN):
    """Token lists of a tokenized file, cut into pieces of `max_len` like make_dataset."""
    for tokens in data.read_tokenized(path):
        for i in range(0, len(tokens), max_len):
            yield tokens[i : i + max_len]


def unigram_perplexity(train_files, heldout_file, vocab):
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.ones(len(vocab), dtype=np.float64)  # add-one: no zero probability
    for path in train_files:
        for piece in pieces(path):
            for w in piece:
                counts[index.get(w, data.UNK_ID)] += 1
            counts[data.EOS_ID] += 1  # forward target </S> (and <S> backward, same count)
    probs = counts / counts.sum()
    nll, n = 0.0, 0
    for piece in pieces(heldout_file):
        ids = [index.get(w, data.UNK_ID) for w in piece] + [data.EOS_ID]
        nll -= np.log(probs[ids]).sum()
        n += len(ids)
    return {
        "perplexity": math.exp(nll / n),
        "tokens": n,
        "oov_rate": float(np.mean([index.get(w, 2) == 2 for p in pieces(heldout_file) for w in p])),
    }


def brown_tagged_sentences(files, n, seed):
    sentences = [s for path in files for s in corpora.read_brown_tagged(path)]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)
    return [sentences[i] for i in sorted(chosen)]


def features(layer, sentences, batch_size=32):
    """Per-token features {name: (N, d)} for a list of token lists."""
    out = collections.defaultdict(list)
    order = np.argsort([len(s) for s in sentences])  # similar lengths per batch
    rows = [None] * len(sentences)
    for start in range(0, len(sentences), batch_size):
        idx = order[start : start + batch_size]
        batch = [sentences[i] for i in idx]
        result = layer(tf.constant(batch_to_ids(batch)))
        layers = [result["word_emb"].numpy()] + [
            result[f"lstm_outputs{k + 1}"].numpy() for k in range(layer.n_lstm_layers)
        ]
        for j, i in enumerate(idx):
            n = len(sentences[i])
            rows[i] = [x[j, :n] for x in layers]
    for per_sentence in rows:
        out["word_emb"].append(per_sentence[0])
        out["top"].append(per_sentence[-1])
        out["elmo_concat"].append(np.concatenate(per_sentence, axis=-1))
    return {k: np.concatenate(v) for k, v in out.items()}


def train_tagger(x_train, y_train, x_test, y_test, n_tags, seed=0, epochs=15):
    keras.utils.set_random_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    model = keras.Sequential(
        [keras.Input((x_train.shape[1],)), keras.layers.Dense(n_tags, activation="softmax")]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit((x_train - mean) / std, y_train, batch_size=256, epochs=epochs, verbose=0)
    _, acc = model.evaluate((x_test - mean) / std, y_test, batch_size=1024, verbose=0)
    return float(acc)


def main(args):
    results = {}
    vocab = data.load_vocab(os.path.join(args.model_dir, "vocab.txt"))
    train_files = sorted(glob.glob(os.path.join(args.splits_dir, "train-*.txt")))
    if not args.skip_perplexity:
        model = model_dir.load_trained(args.model_dir)
        for name in SPLITS:
            path = os.path.join(args.splits_dir, f"{name}.txt")
            t = time.time()
            ds = data.make_dataset(path, vocab, 16, max_len=MAX_LEN)
            results[name] = {
                "bilm": trainer.perplexity(model, ds),
                "unigram": unigram_perplexity(train_files, path, vocab),
            }
            print(name, json.dumps(results[name]), f"({time.time() - t:.0f} s)", flush=True)

    train_brown, held_brown = corpora.brown_files(os.path.join(args.data_dir, "brown"))
    train_s = brown_tagged_sentences(train_brown, args.pos_train, seed=0)
    test_s = brown_tagged_sentences(held_brown, args.pos_test, seed=1)
    tags = sorted({corpora.simplify_brown_tag(t) for s in train_s + test_s for _, t in s})
    tag_id = {t: i for i, t in enumerate(tags)}

    def labels(sents):
        return np.array([tag_id[corpora.simplify_brown_tag(t)] for s in sents for _, t in s])

    layer = ElmoLayer.from_original(
        os.path.join(args.model_dir, "options.json"),
        os.path.join(args.model_dir, "weights.hdf5"),
        output_mode="dict",
    )
    t = time.time()
    f_train = features(layer, [[w for w, _ in s] for s in train_s])
    f_test = features(layer, [[w for w, _ in s] for s in test_s])
    y_train, y_test = labels(train_s), labels(test_s)
    # Most-frequent-tag baseline (per word, from the tagger's training sentences).
    by_word = collections.defaultdict(collections.Counter)
    for s in train_s:
        for w, tg in s:
            by_word[w][corpora.simplify_brown_tag(tg)] += 1
    overall = collections.Counter(corpora.simplify_brown_tag(tg) for s in train_s for _, tg in s)
    top = overall.most_common(1)[0][0]
    mft = np.mean(
        [
            (by_word[w].most_common(1)[0][0] if w in by_word else top)
            == corpora.simplify_brown_tag(tg)
            for s in test_s
            for w, tg in s
        ]
    )
    pos = {
        "n_tags": len(tags),
        "train_sentences": len(train_s),
        "test_sentences": len(test_s),
        "train_tokens": int(len(y_train)),
        "test_tokens": int(len(y_test)),
        "most_frequent_tag_baseline": float(mft),
    }
    for name in ("elmo_concat", "word_emb", "top"):
        pos[name] = train_tagger(f_train[name], y_train, f_test[name], y_test, len(tags))
        print(f"POS accuracy with {name}: {pos[name]:.4f}", flush=True)
    pos["seconds"] = time.time() - t
    results["pos"] = pos
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
