"""Build glue for what pyproject.toml cannot say: the shipped model inside the package.

All metadata is in pyproject.toml. The repository keeps its shipped models at
the top level, in `saved_models/` (a project rule); a wheel, an sdist and
`pip install .` carry the files needed for embedding inside the package, as
`keras_elmo/saved_models/<name>/`, where `keras_elmo.checkpoints.presets`
finds them with importlib.resources. An editable install or a checkout on
sys.path imports keras_elmo from the repository and reads `saved_models/`
beside it. The LM softmax (`softmax.npz`, 13.5 MB, used only by
`keras-elmo perplexity`) stays in the repository.
"""

from setuptools import find_packages, setup

SHIPPED_MODELS = ["elmo-small-en"]
SHIPPED_FILES = ["options.json", "weights.hdf5", "MODEL_CARD.md", "vocab.txt"]

setup(
    packages=find_packages(include=["keras_elmo", "keras_elmo.*"]) + ["keras_elmo.saved_models"],
    package_dir={"keras_elmo.saved_models": "saved_models"},
    package_data={
        "keras_elmo.saved_models": [
            f"{model}/{name}" for model in SHIPPED_MODELS for name in SHIPPED_FILES
        ]
    },
)
