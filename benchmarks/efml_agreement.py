"""keras_elmo against ELMoForManyLangs' own outputs on the fixture models (no torch needed).

    python benchmarks/efml_agreement.py

For each fixture model and LSTM weight layout: the largest absolute
difference over every layer of every sentence between `ElmoLayer.
from_elmoformanylangs` and EFML's first `sents2elmo` call (stateless), and
between a second call of a `stateful=True` layer and EFML's second call.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_elmo.jobs.output import embed_all_layers  # noqa: E402
from keras_elmo.layers import lstm as lstm_lib  # noqa: E402
from keras_elmo.layers.elmo_layer import ElmoLayer  # noqa: E402

EFML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "efml")


def worst(stack, refs, sentences):
    return max(
        float(np.abs(stack[k, :, : len(s)] - refs[f"s{k}"]).max()) for k, s in enumerate(sentences)
    )


def main():
    with open(os.path.join(EFML, "sentences.json"), encoding="utf-8") as f:
        sentences = json.load(f)
    longest = max(len(s) for s in sentences)
    tokens = np.array([s + [""] * (longest - len(s)) for s in sentences], dtype=object)
    for model in ("model_legacy", "model_zip"):
        first_ref = np.load(os.path.join(EFML, f"{model}_outputs.npz"))
        second_ref = np.load(os.path.join(EFML, f"{model}_outputs_second_call.npz"))
        for layout, threshold in (("batch-major", 2**62), ("feature-major", 0)):
            lstm_lib.FEATURE_MAJOR_MIN_RECURRENT = threshold
            layer = ElmoLayer.from_elmoformanylangs(
                os.path.join(EFML, model), output_mode="dict", stateful=True
            )
            runs = [embed_all_layers(layer(tokens), layer.n_lstm_layers).numpy() for _ in "12"]
            sys.stdout.write(
                f"{model} {layout}: first call {worst(runs[0], first_ref, sentences):.2g}, "
                f"stateful second call {worst(runs[1], second_ref, sentences):.2g}\n"
            )


if __name__ == "__main__":
    main()
