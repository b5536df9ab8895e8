"""How far apart are cold, warm and stateful ELMo vectors on real sentences?

- cold: every sentence starts from a zero LSTM state (keras_elmo's default);
- warm: every sentence starts from one stored state, computed once by
  `ElmoLayer.warm_up` on other text (deterministic, batch-independent);
- stateful: the original behaviour, state carried from batch to batch, after
  the few warm-up batches the original authors recommend.

Prints, per layer, the mean relative distance ||a - b|| / ||b|| over tokens
and the mean cosine similarity, for each pair. Usage:

    python examples/compare_initial_states.py [--options-file O --weight-file W]
        [--data BROWN_DIR] [--sentences 256]

Data: the held-out files of the Brown corpus, the full corpus when it is
found (docs/examples.md, "Data"), else the sample in examples/data/brown.
"""

import argparse
import sys

import corpora
import example_utils as eu
import numpy as np


def brown_sentences(files):
    """Brown sentences of 3 to 60 tokens from `files`, in order."""
    return [s for path in files for s in corpora.read_brown(path) if 3 <= len(s) <= 60]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    eu.add_model_args(parser)
    eu.add_data_arg(parser, "brown")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = eu.parse_checked(parser, argv, data="brown")  # before TensorFlow loads
    brown = args.data

    from keras_elmo import ElmoLayer, batch_to_ids

    train, held_out = corpora.brown_files(brown)  # the project's held-out rule
    evaluation = brown_sentences(held_out)[: args.sentences]
    warm_text = brown_sentences(train[:3])[:128]

    def load(**kwargs):
        return ElmoLayer.from_original(
            args.options_file, args.weight_file, output_mode="dict", **kwargs
        )

    cold, warm = load(), load().warm_up(warm_text, n_streams=8)
    stateful = load(stateful=True, state_rows=args.batch_size)
    bs = args.batch_size
    for start in range(0, len(warm_text), bs):  # the recommended warm-up batches
        stateful(batch_to_ids(warm_text[start : start + bs]))

    keys = ["lstm_outputs1", "lstm_outputs2", "elmo"]
    runs = {name: {k: [] for k in keys} for name in ("cold", "warm", "stateful")}
    for start in range(0, len(evaluation), bs):
        batch = evaluation[start : start + bs]
        ids = batch_to_ids(batch)
        for name, layer in (("cold", cold), ("warm", warm), ("stateful", stateful)):
            out = layer(ids)
            for k in keys:
                a = out[k].numpy()
                runs[name][k].extend(a[i, : len(s)] for i, s in enumerate(batch))

    print(
        f"{len(evaluation)} held-out Brown sentences, "
        f"{sum(map(len, evaluation))} tokens; model {args.weight_file}"
    )
    print("| pair | layer | mean relative distance | mean cosine |")
    print("|---|---|---|---|")
    for a, b in (("cold", "stateful"), ("warm", "stateful"), ("cold", "warm")):
        for k in keys:
            x = np.concatenate(runs[a][k])
            y = np.concatenate(runs[b][k])
            rel = np.linalg.norm(x - y, axis=1) / np.maximum(np.linalg.norm(y, axis=1), 1e-12)
            cos = (x * y).sum(1) / np.maximum(
                np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12
            )
            print(f"| {a} vs {b} | {k} | {rel.mean():.4f} | {cos.mean():.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
