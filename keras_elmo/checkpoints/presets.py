"""Models by name: the shipped `elmo-small-en` and the published models, one table.

Each `Preset` says which files make the model (`files`: role -> path inside
the preset's directory) and, for a downloaded model, where each piece comes
from (`downloads`). A download is either a single file or a zip archive
unpacked as a directory (`extract=True`), so a family of models published as
archives (ELMoForManyLangs: one zip per language) adds rows, not code.
`format` names the loader: "original" is the `options.json` + `weights.hdf5`
pair that `ElmoLayer.from_original` reads; other loaders add their own name.

Pinning: a `Download` carries the size and SHA-256 its publisher gives,
where one does (None otherwise: then the server's Content-Length is checked
and the digest of the first download is recorded and checked at every later
use, `download.py`), and its mirrors, tried in order. The ELMoForManyLangs
catalog (44 languages) is `preset_catalog.py`.

Downloaded presets live in `<cache>/presets/<name>/` (see
`download.cache_dir()`); the shipped one is package data. Like the rest of
`checkpoints`, this module imports no TensorFlow: the command line resolves
a model name before it loads TensorFlow.
"""

import dataclasses
import difflib
import importlib.resources
import os
from pathlib import Path

from keras_elmo.checkpoints import download, efml, preset_catalog
from keras_elmo.errors import InputError, MissingFileError

# The format `ElmoLayer.from_original` reads: role -> file name in the directory.
ORIGINAL_FILES = {"options": "options.json", "weights": "weights.hdf5"}


@dataclasses.dataclass(frozen=True)
class Download:
    """One piece of a preset: `url` fetched to `dest` inside the preset's directory.

    `size` (bytes) and `sha256` are the published ones, checked where known
    (None: not published; the server's Content-Length is checked and the
    first download's digest pinned). `mirrors` are further URLs of the same
    file, tried in order after `url`. With `extract=True` the URL is a zip
    archive unpacked as the directory `dest`.
    """

    url: str
    dest: str
    size: int | None = None
    sha256: str | None = None
    extract: bool = False
    mirrors: tuple = ()

    @property
    def urls(self):
        """`url` and then its mirrors: the order they are tried in."""
        return (self.url, *self.mirrors)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    format: str
    files: dict
    # Nothing to download: the files are package data (`shipped_dir`).
    downloads: tuple = ()
    shipped_dir: str | None = None
    # For people choosing a model (docs, `list_presets`); not checked.
    approx_size: str = ""
    source: str = ""


# The AllenNLP bucket, by the two addresses it has been linked under: the
# path-style one of allennlp.org/elmo and bilm-tf's README, and the
# virtual-host one that AllenNLP's own training configs use
# (https://allennlp.s3.amazonaws.com/models/elmo/2x4096_512_2048cnn_2xhighway/...).
# Both are https. AllenNLP publishes no byte sizes or digests for these files
# (none found on allennlp.org/elmo, in bilm-tf or allennlp), so size and
# sha256 stay None: the digest is pinned at the first download.
ALLENNLP_ELMO = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo"
ALLENNLP_ELMO_MIRRORS = ("https://allennlp.s3.amazonaws.com/models/elmo",)
ALLENNLP_PAGE = "https://allennlp.org/elmo"


def _allennlp(name, stem, description, approx_size):
    """A published AllenNLP model: `<stem>/elmo_<stem>_{options.json,weights.hdf5}`.

    The URLs are the ones the AllenNLP ELMo page links (allennlp.org/elmo),
    then the same files under the bucket's other address.
    """

    def piece(suffix, dest):
        path = f"{stem}/elmo_{stem}_{suffix}"
        return Download(
            f"{ALLENNLP_ELMO}/{path}",
            dest,
            mirrors=tuple(f"{base}/{path}" for base in ALLENNLP_ELMO_MIRRORS),
        )

    return Preset(
        name=name,
        description=description,
        format="original",
        files=dict(ORIGINAL_FILES),
        downloads=(
            piece("options.json", ORIGINAL_FILES["options"]),
            piece("weights.hdf5", ORIGINAL_FILES["weights"]),
        ),
        approx_size=approx_size,
        source=ALLENNLP_PAGE,
    )


EFML_PAGE = "https://github.com/HIT-SCIR/ELMoForManyLangs"


def efml_preset(code, language, urls):
    """An ELMoForManyLangs model: one zip (`urls`: its URL, or its mirrors in
    order), unpacked as `model/` (the loader finds the model files there or
    in its one subdirectory)."""
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    return Preset(
        name=f"elmo-efml-{code}",
        description=f"ELMoForManyLangs {language} (HIT-SCIR): LSTM 4096/512, Unicode "
        "characters + 100-d words, trained on 20 M words of CoNLL 2018 raw text "
        "(docs/many-languages.md).",
        format="efml",
        files={"model_dir": "model"},
        # NLPL publishes no sizes or digests: the Content-Length is checked
        # and the first download pinned (preset_catalog.py).
        downloads=(Download(urls[0], "model", extract=True, mirrors=tuple(urls[1:])),),
        source=EFML_PAGE,
    )


PRESETS = {
    preset.name: preset
    for preset in (
        Preset(
            name="elmo-small-en",
            description="The model shipped with keras_elmo: LSTM 256/128, 2 layers, trained "
            "on 3.2 M tokens of Brown, SOTU and Moby-Dick (examples, tests, small experiments).",
            format="original",
            files=dict(ORIGINAL_FILES),
            shipped_dir="elmo-small-en",
            approx_size="5.5 MB (shipped, no download)",
            source="saved_models/elmo-small-en/MODEL_CARD.md",
        ),
        _allennlp(
            "allennlp-small-en",
            "2x1024_128_2048cnn_1xhighway",
            "AllenNLP 'Small': LSTM 1024/128, 1 highway, 13.6 M parameters, trained on the "
            "1 Billion Word Benchmark.",
            "~54 MB",
        ),
        _allennlp(
            "allennlp-medium-en",
            "2x2048_256_2048cnn_1xhighway",
            "AllenNLP 'Medium': LSTM 2048/256, 1 highway, 28.0 M parameters, trained on the "
            "1 Billion Word Benchmark.",
            "~112 MB",
        ),
        _allennlp(
            "allennlp-original-en",
            "2x4096_512_2048cnn_2xhighway",
            "AllenNLP 'Original', the ELMo of the paper: LSTM 4096/512, 2 highway, 93.6 M "
            "parameters, trained on the 1 Billion Word Benchmark.",
            "~374 MB",
        ),
        _allennlp(
            "allennlp-original-5.5b-en",
            "2x4096_512_2048cnn_2xhighway_5.5B",
            "AllenNLP 'Original (5.5B)': the Original architecture trained on 5.5 B tokens "
            "(Wikipedia + WMT 2008-2012 news); AllenNLP's recommended default.",
            "~374 MB",
        ),
    )
}
# The 44 languages EFML's README links (codes and NLPL ids in preset_catalog).
PRESETS.update(
    (p.name, p)
    for p in (
        efml_preset(code, language, preset_catalog.language_urls(code))
        for code, (language, _) in preset_catalog.LANGUAGES.items()
    )
)


def list_presets():
    """Lists the models `ElmoLayer.from_preset` loads by name.

    "elmo-small-en" is shipped with the package; the published AllenNLP
    models ("allennlp-*") and the 44 ELMoForManyLangs languages
    ("elmo-efml-<code>") are downloaded on first use into the cache
    (`$KERAS_ELMO_CACHE`, else `keras_elmo/` in Keras's cache directory) and
    read from there afterwards, also offline.
    docs/models.md has the table with sizes and sources. This imports no
    TensorFlow.

    Returns:
        A dict `{name: description}` of every preset, the shipped one first.

    Example:

    >>> import keras_elmo
    >>> presets = keras_elmo.list_presets()
    >>> list(presets)[:5]
    ['elmo-small-en', 'allennlp-small-en', 'allennlp-medium-en', 'allennlp-original-en',
     'allennlp-original-5.5b-en']
    >>> sum(name.startswith("elmo-efml-") for name in presets)
    44
    """
    return {name: preset.description for name, preset in PRESETS.items()}


def _closest_names(name):
    """'did you mean ...?' for the preset names closest to `name`, and where the list is."""
    close = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.6)
    names = [repr(name) for name in close]
    said = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    hint = f"did you mean {said}? " if close else ""
    return (
        f"{hint}`keras-elmo presets` (or keras_elmo.list_presets()) lists all {len(PRESETS)}; "
        "elmo-small-en is shipped."
    )


def get_preset(name):
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; {_closest_names(name)}")
    return PRESETS[name]


def check_model_spec(spec):
    """Refuse a `--model` value that is neither a preset name nor a directory (no I/O else).

    What `resolve_model` says about such a name, without resolving anything.
    """
    spec = os.fspath(spec)
    if spec in PRESETS or Path(spec).is_dir():
        return
    if Path(spec).exists():
        raise InputError(f"{spec} is a file, not a model directory or a preset name.")
    raise InputError(f"{spec!r} is neither a preset nor a model directory; {_closest_names(spec)}")


def preset_dir(name):
    """The directory that holds (or will hold) preset `name`'s files."""
    preset = get_preset(name)
    if preset.shipped_dir is not None:
        return shipped_model_dir(preset.shipped_dir)
    return download.cache_dir() / "presets" / name


def shipped_model_dir(dirname):
    """Where a model shipped with the package is, in every way of installing it.

    The repository keeps shipped models in its top-level `saved_models/`. A
    checkout on sys.path, or an editable install (whose modules are links to
    the checkout's), reads them there, softmax included. A wheel or
    `pip install .` carries the embedding files inside the package as
    `keras_elmo/saved_models/` (setup.py maps the one onto the other), read
    with importlib.resources.
    """
    # resolve(): an editable install's module is a link into the checkout.
    root = Path(__file__).resolve().parents[2]
    in_repo = root / "saved_models" / dirname
    if (root / "pyproject.toml").is_file() and in_repo.is_dir():
        return in_repo
    packaged = importlib.resources.files("keras_elmo").joinpath("saved_models", dirname)
    if isinstance(packaged, os.PathLike) and packaged.is_dir():
        return Path(packaged)
    raise MissingFileError(
        f"the shipped model {dirname!r} is not installed: looked in {in_repo} and {packaged}."
    )


def fetch_preset(name, *, progress=False, offline=None, refresh=False):
    """The local files of preset `name`, downloading them on first use: {role: Path}.

    Each file is checked against its pinned digest (the table's, else the one
    recorded at its first download) at every call; `refresh=True` downloads
    them again and pins what the server has now.
    """
    preset = get_preset(name)
    directory = preset_dir(name)
    for item in preset.downloads:
        fetcher = download.fetch_archive if item.extract else download.fetch
        fetcher(
            item.urls,
            directory / item.dest,
            size=item.size,
            sha256=item.sha256,
            progress=progress,
            offline=offline,
            refresh=refresh,
        )
    files = {role: directory / rel for role, rel in preset.files.items()}
    for role, path in files.items():
        if not path.exists():
            raise MissingFileError(f"preset {name!r}: its {role} file {path} is missing.")
    return files


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """A model on local disk: its loader's `format` and its files {role: Path}."""

    format: str
    files: dict


def resolve_model(spec, *, progress=False, offline=None, refresh=False):
    """A preset name or a model directory -> `ModelFiles`, downloading a preset if needed.

    A directory is recognised by its contents: `options.json` + `weights.hdf5`
    is the original format, `config.json` + `char.dic` an ELMoForManyLangs
    model ("efml", files {"model_dir": the directory}). `refresh=True`
    downloads a preset again (`fetch_preset`); a directory is read as it is.
    """
    spec = os.fspath(spec)
    if spec in PRESETS:
        return ModelFiles(
            PRESETS[spec].format,
            fetch_preset(spec, progress=progress, offline=offline, refresh=refresh),
        )
    path = Path(spec)
    if path.is_dir():
        files = {role: path / name for role, name in ORIGINAL_FILES.items()}
        if all(p.is_file() for p in files.values()):
            return ModelFiles("original", files)
        if efml.is_model_dir(path):
            return ModelFiles("efml", {"model_dir": path})
        raise InputError(
            f"{spec} holds no model this version reads: expected "
            f"{' + '.join(ORIGINAL_FILES.values())} (or an ELMoForManyLangs config.json + "
            f"char.dic)."
        )
    check_model_spec(spec)
