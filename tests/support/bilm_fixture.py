"""The bilm-tf fixture (tests/fixtures/bilm-tf): its files and expected outputs.

Used by the tests and by benchmarks/fixture_agreement.py, which put
`tests/` on sys.path to import it.
"""

import json
import pathlib

FIXTURE_DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "bilm-tf"
OPTIONS_FILE = FIXTURE_DIR / "options.json"
WEIGHT_FILE = FIXTURE_DIR / "lm_weights.hdf5"
N_BATCHES = 10  # batch i is [s[0][i], s[1][i], s[2][i]], run in order, stateful
# The check the original projects use against this fixture: np.allclose, atol 1e-6.
# Held here to 1e-6 absolute with rtol 0 (np.allclose's default rtol 1e-5 would
# add up to 1.6e-5 at the fixture's largest values); measured worst: 8.3e-7.
ATOL = 1e-6


def allclose(actual, expected):
    """The originals' check, exact: |actual - expected| <= 1e-6 everywhere (rtol 0)."""
    import numpy as np

    return np.allclose(actual, expected, atol=ATOL, rtol=0)


def load_fixture(fixture_dir=FIXTURE_DIR):
    """(sentences, expected): `sentences[k][i]` is a space-joined sentence and
    `expected[k][i]` its top-layer output (T, 2P), forward and backward
    halves concatenated, as the original code produced it."""
    import h5py
    import numpy as np

    fixture_dir = pathlib.Path(fixture_dir)
    sentences = json.loads((fixture_dir / "lm_embeddings_sentences.json").read_text())
    expected = []
    for k in range(len(sentences)):
        with h5py.File(fixture_dir / f"lm_embeddings_{k}.hdf5", "r") as f:
            expected.append([np.concatenate(list(f[str(i)][...]), -1) for i in range(N_BATCHES)])
    return sentences, expected


def fixture_layer(fixture_dir=FIXTURE_DIR, **kwargs):
    """An ElmoLayer with the fixture's weights (`kwargs` go to `from_original`)."""
    from keras_elmo import ElmoLayer

    fixture_dir = pathlib.Path(fixture_dir)
    return ElmoLayer.from_original(
        fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", **kwargs
    )
