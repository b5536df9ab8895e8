"""How much ELMoForManyLangs' stateful encoder moves its outputs (EFML issue 30).

Runs EFML itself (its own environment, as tests/fixtures/efml/generate.py:
elmoformanylangs==0.0.4.post2, torch==2.13.0, overrides==3.1.0) on the
fixture models and sentences:

    /work/venv-efml/bin/python benchmarks/efml_state_drift.py

and prints, per model, the largest change between a first and a second
`sents2elmo` call on the same `Embedder` (the carried LSTM state), and the
largest difference between each sentence run alone in a fresh `Embedder`
and the same sentence inside the one-batch first call.
"""

import json
import logging
import os
import sys

import numpy as np
from elmoformanylangs import Embedder

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
EFML = os.path.join(FIXTURES, "efml")


def main():
    logging.disable(logging.CRITICAL)
    with open(os.path.join(EFML, "sentences.json"), encoding="utf-8") as f:
        sentences = json.load(f)
    for model in ("model_legacy", "model_zip"):
        path = os.path.join(EFML, model)
        embedder = Embedder(path, batch_size=len(sentences))
        first = embedder.sents2elmo(sentences, output_layer=-2)
        second = embedder.sents2elmo(sentences, output_layer=-2)
        drift = max(float(np.abs(a - b).max()) for a, b in zip(first, second))
        alone = [
            Embedder(path, batch_size=1).sents2elmo([s], output_layer=-2)[0] for s in sentences
        ]
        batch = max(float(np.abs(a - b).max()) for a, b in zip(first, alone))
        sys.stdout.write(
            f"{model}: second call moved outputs by up to {drift:.3g}; "
            f"alone vs in the batch: {batch:.2g}\n"
        )


if __name__ == "__main__":
    main()
