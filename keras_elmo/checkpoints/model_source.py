"""One model, however it is named: `ModelSource`.

A model reaches keras_elmo in one of four ways: a preset name or a model
directory (`preset`, what `--model` takes), the published options + weights
pair (local files or `http(s)://` URLs), a `.keras` file, or an
ELMoForManyLangs model directory. The rules (exactly one of them; the pair
whole) are written here once, and every way in goes through this class:
`ElmoLayer.from_preset` and `from_original`, the embed job, the export,
Beam and the command line.

`check()` looks at names and local files only (no download, no TensorFlow);
`resolve()` gives a `ModelSource` of local files (downloading a preset or a
URL once into the cache); `ElmoLayer.from_source(source, **layer_kwargs)`
gives the layer (in `keras_elmo.layers.elmo_layer`: checkpoints come
before the layers, tests/test_architecture.py).
"""

import dataclasses
import os

from keras_elmo.checkpoints import download, presets
from keras_elmo.errors import InputError, MissingFileError

PAIR = ("options_file", "weight_file")
# How the errors name each field; the command line passes its flags instead.
FIELD_NAMES = {
    "preset": "a preset name or model directory",
    "options_file": "an options file",
    "weight_file": "a weight file",
    "keras_file": "a .keras file",
    "efml_dir": "an ELMoForManyLangs directory",
}
# What a missing local file is called in its error.
_FILE_KINDS = {"options_file": "ELMo options file", "weight_file": "ELMo weight file"}


def check_choice(fields, names=FIELD_NAMES, default=None):
    """The rules: exactly one model among `fields` ({field: value or None}).

    `names` says how the errors name each field (`FIELD_NAMES`, or the
    command line's flags); `default`, when set, is the preset used when
    nothing is given, and the errors say so. Returns the given fields.
    """
    given = {field: value for field, value in fields.items() if value is not None}
    halves = [field for field in PAIR if field in given]
    tail = f" (then {names['preset']}, default {default})" if default else ""
    if len(halves) == 1:
        raise InputError(
            f"give both {names['options_file']} and {names['weight_file']}, or neither{tail}."
        )
    pair = f"{names['options_file']} + {names['weight_file']}"
    kinds = [pair if field == PAIR[0] else names[field] for field in given if field != PAIR[1]]
    if len(kinds) > 1:
        raise InputError(f"give {kinds[0]} or {kinds[1]}, not both.")
    if not kinds and default is None:
        choices = [names["preset"], pair, names["keras_file"], names["efml_dir"]]
        raise InputError(f"give exactly one model: {', '.join(choices[:-1])} or {choices[-1]}.")
    return given or {"preset": default}


def _is_remote(path):
    """A URL, or a path of another filesystem (gs://, ...): checked when it is read."""
    return "://" in str(path)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: exactly one of the fields (the pair counts as one).

    Args:
        preset: a preset name (`keras_elmo.list_presets()`) or a model
            directory (options.json + weights.hdf5, or an ELMoForManyLangs
            model).
        options_file, weight_file: the published pair (`options.json`,
            `weights.hdf5`), local paths or `http(s)://` URLs; both or neither.
        keras_file: a `.keras` file holding an `ElmoLayer` or a model with one.
        efml_dir: an ELMoForManyLangs model directory.
    """

    preset: str | None = None
    options_file: str | None = None
    weight_file: str | None = None
    keras_file: str | None = None
    efml_dir: str | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                object.__setattr__(self, field.name, os.fspath(value))
        check_choice(self.fields())

    @classmethod
    def of(cls, source=None, **fields):
        """`source` (a `ModelSource`, or a preset name or model directory), or `fields`.

        For functions that take a model either way; giving both is an error.
        """
        if source is None:
            return cls(**fields)
        given = [FIELD_NAMES[field] for field, value in fields.items() if value is not None]
        if given:
            raise InputError(f"give a model source or {given[0]}, not both.")
        if isinstance(source, cls):
            return source
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(f"source must be a ModelSource or a preset name, got {source!r}.")
        return cls(preset=source)

    def fields(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def describe(self):
        """The given fields, as a dict (for a manifest or a log line)."""
        return {field: value for field, value in self.fields().items() if value is not None}

    def check(self):
        """Refuse what is wrong without downloading anything or loading TensorFlow.

        Unknown preset names, missing local files; a URL or another
        filesystem's path is checked when it is read. Returns self.
        """
        if self.preset is not None:
            presets.check_model_spec(self.preset)
        for field in PAIR:
            path = getattr(self, field)
            if path is not None and not _is_remote(path) and not os.path.isfile(path):
                raise MissingFileError(f"{_FILE_KINDS[field]} not found: {path}")
        if self.keras_file is not None:
            if not self.keras_file.endswith(".keras"):
                raise InputError(f"expected a .keras file, got {self.keras_file!r}.")
            if not _is_remote(self.keras_file) and not os.path.isfile(self.keras_file):
                raise MissingFileError(f"Keras file not found: {self.keras_file}")
        if self.efml_dir is not None and not os.path.isdir(self.efml_dir):
            raise MissingFileError(f"ELMoForManyLangs model directory not found: {self.efml_dir}")
        return self

    def resolve(self, *, progress=False, offline=None, refresh=False):
        """The same model as local files: a `ModelSource` of a local pair,
        `.keras` file or ELMoForManyLangs directory.

        A preset is downloaded on first use and a URL once, into the cache
        (`keras_elmo.checkpoints.download`), checked against the SHA-256
        pinned then; `refresh=True` downloads it again; `progress=True` shows
        a progress bar on stderr.
        """
        self.check()
        if self.preset is not None:
            model = presets.resolve_model(
                self.preset, progress=progress, offline=offline, refresh=refresh
            )
            if model.format == "original":
                files = model.files
                return ModelSource(options_file=files["options"], weight_file=files["weights"])
            if model.format == "efml":
                return ModelSource(efml_dir=model.files["model_dir"])
            raise InputError(
                f"{self.preset!r} is a {model.format!r} model, which this version cannot load."
            )
        if self.options_file is not None:
            local = {
                field: download.cached_url(
                    path, progress=progress, offline=offline, refresh=refresh
                )
                if download.is_url(path)
                else path
                for field, path in zip(PAIR, (self.options_file, self.weight_file))
            }
            return ModelSource(**local).check()
        if self.keras_file is not None and _is_remote(self.keras_file):
            raise InputError(f"the .keras file must be a local file, got {self.keras_file!r}.")
        return self

    def model_files(self):
        """The local files that make the model (to hash it); resolve first."""
        local = self.resolve()
        if local.efml_dir is not None:
            return sorted(
                os.path.join(local.efml_dir, name)
                for name in os.listdir(local.efml_dir)
                if os.path.isfile(os.path.join(local.efml_dir, name))
            )
        if local.keras_file is not None:
            return [local.keras_file]
        return [local.options_file, local.weight_file]
