"""Presets by name and models by URL, against a file server on 127.0.0.1.

Downloaded models are the bilm-tf fixture served over HTTP, checked against
bilm-tf's own outputs; the shipped preset against an explicit-path load of
the repository's files.
"""

import hashlib
import io
import os
import pathlib
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from support.bilm_fixture import allclose, load_fixture
from support.http_server import serve

from keras_elmo import ElmoLayer, batch_to_ids, list_presets, published_options
from keras_elmo.checkpoints import download, preset_catalog, presets
from keras_elmo.errors import ElmoError, InputError

REPO = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "elmo-small-en"


@pytest.fixture(autouse=True)
def cache(download_cache):
    return download_cache


@pytest.fixture
def fixture_files(fixture_dir):
    return {
        "/m/options.json": (fixture_dir / "options.json").read_bytes(),
        "/m/weights.hdf5": (fixture_dir / "lm_weights.hdf5").read_bytes(),
    }


def first_fixture_batch(fixture_dir):
    """bilm-tf's top-layer outputs for the first batch of its test sentences."""
    sentences, expected = load_fixture(fixture_dir)
    batch = [sentences[k][0].split() for k in range(3)]
    return batch, [expected[k][0] for k in range(3)]


def assert_reproduces_fixture(layer, fixture_dir):
    batch, expected = first_fixture_batch(fixture_dir)
    top = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
    for k in range(3):
        got = top[k, : len(batch[k])]
        assert allclose(got, expected[k]), (k, np.abs(got - expected[k]).max())


def add_preset(monkeypatch, preset):
    monkeypatch.setitem(presets.PRESETS, preset.name, preset)


def add_fixture_preset(monkeypatch, server, fixture_files, checked=True, first_mirror=None):
    """Preset "test-fixture": the bilm-tf fixture's two files on `server`.

    `checked`: the row carries each file's size and SHA-256 (computed here).
    `first_mirror`: a server tried first for each file (`server` is then the mirror).
    """
    downloads = []
    for path, dest in (("/m/options.json", "options.json"), ("/m/weights.hdf5", "weights.hdf5")):
        data = fixture_files[path]
        sums = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} if checked else {}
        if first_mirror is None:
            downloads.append(presets.Download(server.url(path), dest, **sums))
        else:
            downloads.append(
                presets.Download(first_mirror.url(path), dest, mirrors=(server.url(path),), **sums)
            )
    add_preset(
        monkeypatch,
        presets.Preset(
            name="test-fixture",
            description="the bilm-tf fixture over HTTP",
            format="original",
            files=dict(presets.ORIGINAL_FILES),
            downloads=tuple(downloads),
        ),
    )


def test_the_table():
    names = list(list_presets())
    assert names[:5] == [
        "elmo-small-en",
        "allennlp-small-en",
        "allennlp-medium-en",
        "allennlp-original-en",
        "allennlp-original-5.5b-en",
    ]
    # Then the 44 ELMoForManyLangs languages (tests/test_efml_layer.py checks them).
    assert names[5:] == [f"elmo-efml-{code}" for code in preset_catalog.LANGUAGES]
    # Over https first, then the http link EFML's README gives.
    (german,) = presets.get_preset("elmo-efml-de").downloads
    assert german.urls == (
        "https://vectors.nlpl.eu/repository/11/142.zip",
        "http://vectors.nlpl.eu/repository/11/142.zip",
    )
    # The four AllenNLP presets above, and the published size each one has.
    for name, size in zip(names[1:5], ["small", "medium", "original", "original"]):
        preset = presets.get_preset(name)
        urls = [d.url for d in preset.downloads]
        assert [d.dest for d in preset.downloads] == ["options.json", "weights.hdf5"]
        assert all(u.startswith("https://s3-us-west-2.amazonaws.com/allennlp/") for u in urls)
        # The bucket's other address, the same paths, as the one mirror.
        for item in preset.downloads:
            assert item.mirrors == (
                item.url.replace(
                    "https://s3-us-west-2.amazonaws.com/allennlp/",
                    "https://allennlp.s3.amazonaws.com/",
                ),
            )
            # Not published: checked against Content-Length, pinned on first use.
            assert item.size is None and item.sha256 is None
        # The published file names spell out the architecture:
        # 2x<lstm dim>_<projection dim>_2048cnn_<n>xhighway.
        lstm = published_options(size)["lstm"]
        n_highway = published_options(size)["char_cnn"]["n_highway"]
        stem = f"2x{lstm['dim']}_{lstm['projection_dim']}_2048cnn_{n_highway}xhighway"
        assert all(f"/elmo_{stem}" in u for u in urls), urls
        assert urls[0].endswith("_options.json") and urls[1].endswith("_weights.hdf5")
        assert ("5.5B" in urls[1]) == ("5.5b" in name)


def test_unknown_names_and_empty_directories_are_clear(tmp_path):
    with pytest.raises(InputError, match="elmo-small-en") as err:
        ElmoLayer.from_preset("elmo-huge-xx")
    assert "'elmo-huge-xx'" in str(err.value)
    with pytest.raises(InputError, match="options.json \\+ weights.hdf5"):
        presets.resolve_model(tmp_path)


def test_model_directories_are_recognised_by_their_files(fixture_dir):
    model = presets.resolve_model(fixture_dir.parent / "efml" / "model_zip")
    assert model == presets.ModelFiles(
        "efml", {"model_dir": fixture_dir.parent / "efml" / "model_zip"}
    )
    assert presets.resolve_model(str(SHIPPED)) == presets.ModelFiles(
        "original", {"options": SHIPPED / "options.json", "weights": SHIPPED / "weights.hdf5"}
    )


def test_an_elmoformanylangs_directory_loads_through_from_preset(fixture_dir):
    model_dir = fixture_dir.parent / "efml" / "model_zip"
    by_dir = ElmoLayer.from_preset(model_dir, output_mode="dict")
    direct = ElmoLayer.from_elmoformanylangs(model_dir, output_mode="dict")
    tokens = [["Grüße", "aus", "Köln"], ["Привет", "", ""]]
    got, want = by_dir(tokens), direct(tokens)
    for key in ("word_emb", "lstm_outputs1", "lstm_outputs2"):
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)


def test_shipped_preset_needs_no_network_and_equals_the_explicit_load(monkeypatch, cache):
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    model = presets.resolve_model("elmo-small-en")
    # In a checkout (and an editable install) the shipped files are the repository's.
    assert model.files == {
        "options": SHIPPED / "options.json",
        "weights": SHIPPED / "weights.hdf5",
    }
    by_name = ElmoLayer.from_preset("elmo-small-en", output_mode="dict")
    by_path = ElmoLayer.from_original(
        SHIPPED / "options.json", SHIPPED / "weights.hdf5", output_mode="dict"
    )
    ids = batch_to_ids(["The cat sat on the mat .".split(), "Call me Ishmael .".split(), ["Hello"]])
    got, want = by_name(ids), by_path(ids)
    for key in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default"):
        # The same graph on the same inputs: equal to the last bit.
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    assert np.abs(want["lstm_outputs2"].numpy()).max() > 0.01
    assert not cache.exists()  # nothing was downloaded or cached


def test_a_model_directory_is_a_preset_too(fixture_dir, tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "options.json").write_bytes((fixture_dir / "options.json").read_bytes())
    (directory / "weights.hdf5").write_bytes((fixture_dir / "lm_weights.hdf5").read_bytes())
    layer = ElmoLayer.from_preset(directory, stateful=True, output_mode="dict")
    assert_reproduces_fixture(layer, fixture_dir)


def test_downloaded_preset_then_offline(monkeypatch, fixture_dir, fixture_files, cache):
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files)
        layer = ElmoLayer.from_preset(
            "test-fixture", progress=False, stateful=True, output_mode="dict"
        )
        assert len(server.requests) == 2
    assert_reproduces_fixture(layer, fixture_dir)
    assert (cache / "presets" / "test-fixture" / "weights.hdf5").read_bytes() == (
        fixture_files["/m/weights.hdf5"]
    )
    # The server is gone: the cache serves the preset.
    again = ElmoLayer.from_preset("test-fixture", stateful=True, output_mode="dict")
    assert_reproduces_fixture(again, fixture_dir)


def test_archive_preset(monkeypatch, fixture_dir, fixture_files, cache):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("en/options.json", fixture_files["/m/options.json"])
        zf.writestr("en/weights.hdf5", fixture_files["/m/weights.hdf5"])
    archive = buffer.getvalue()
    with serve({"/en.zip": archive}) as server:
        add_preset(
            monkeypatch,
            presets.Preset(
                name="test-archive",
                description="the bilm-tf fixture as a zip archive",
                format="original",
                files={"options": "model/en/options.json", "weights": "model/en/weights.hdf5"},
                downloads=(
                    presets.Download(
                        server.url("/en.zip"),
                        "model",
                        size=len(archive),
                        sha256=hashlib.sha256(archive).hexdigest(),
                        extract=True,
                    ),
                ),
            ),
        )
        layer = ElmoLayer.from_preset(
            "test-archive", progress=False, stateful=True, output_mode="dict"
        )
    assert_reproduces_fixture(layer, fixture_dir)
    unpacked = cache / "presets" / "test-archive" / "model" / "en"
    assert sorted(p.name for p in unpacked.iterdir()) == ["options.json", "weights.hdf5"]
    offline = ElmoLayer.from_preset("test-archive", stateful=True, output_mode="dict")
    assert_reproduces_fixture(offline, fixture_dir)


def test_from_original_accepts_urls_and_caches_them(fixture_dir, fixture_files):
    with serve(fixture_files) as server:
        urls = server.url("/m/options.json"), server.url("/m/weights.hdf5")
        layer = ElmoLayer.from_original(*urls, progress=False, stateful=True, output_mode="dict")
    assert_reproduces_fixture(layer, fixture_dir)
    cached = download.url_cache_path(urls[1])
    assert cached.read_bytes() == fixture_files["/m/weights.hdf5"]
    # Offline now: the same URLs load from the cache.
    again = ElmoLayer.from_original(*urls, stateful=True, output_mode="dict")
    assert_reproduces_fixture(again, fixture_dir)


def test_a_url_that_cannot_be_fetched_is_a_clear_error(fixture_files):
    with serve(fixture_files) as server:
        url = server.url("/m/nothing.hdf5")
        with pytest.raises(download.DownloadError, match="HTTP 404") as err:
            ElmoLayer.from_original(server.url("/m/options.json"), url, progress=False)
    assert url in str(err.value) and str(download.url_cache_path(url)) in str(err.value)


@pytest.mark.slow  # a fresh Python process
def test_checkpoint_modules_resolve_models_without_tensorflow(tmp_path):
    """The CLI resolves a model before loading TensorFlow: these modules must not import it."""
    script = f"""
import importlib.abc, importlib.util, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("imported " + name)
sys.meta_path.insert(0, Refuse())
# Only the checkpoint modules: skip keras_elmo/__init__ (the public API imports the layers).
spec = importlib.util.spec_from_file_location(
    "keras_elmo", {str(REPO / "keras_elmo" / "__init__.py")!r},
    submodule_search_locations=[{str(REPO / "keras_elmo")!r}])
sys.modules["keras_elmo"] = importlib.util.module_from_spec(spec)  # not executed
from keras_elmo.checkpoints import presets
print(presets.resolve_model("elmo-small-en").files["weights"])
"""
    env = dict(os.environ, KERAS_ELMO_OFFLINE="1", KERAS_ELMO_CACHE=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(SHIPPED / "weights.hdf5")


# ------------------------------------------------------------------ command line


def embed(tmp_path, name, *model_flags):
    """Run `keras-elmo embed` on three sentences; {index: vectors} of the output."""
    from keras_elmo.cli import main

    src = tmp_path / "in.txt"
    src.write_text("The cat sat on the mat .\nCall me Ishmael .\nHello !\n", encoding="utf-8")
    out = tmp_path / f"{name}.hdf5"
    assert main(["embed", str(src), str(out), "--quiet", *model_flags]) == 0
    with h5py.File(out, "r") as f:
        return {i: f[str(i)][...] for i in range(3)}


def assert_same_vectors(got, want):
    for i in range(3):
        np.testing.assert_array_equal(got[i], want[i])


def test_cli_default_model_is_the_shipped_preset(tmp_path):
    explicit = embed(
        tmp_path,
        "explicit",
        "--options-file",
        str(SHIPPED / "options.json"),
        "--weight-file",
        str(SHIPPED / "weights.hdf5"),
    )
    assert [v.shape for v in explicit.values()] == [(3, 7, 256), (3, 4, 256), (3, 2, 256)]
    assert_same_vectors(embed(tmp_path, "default"), explicit)
    assert_same_vectors(embed(tmp_path, "named", "--model", "elmo-small-en"), explicit)
    assert_same_vectors(embed(tmp_path, "dir", "--model", str(SHIPPED)), explicit)


def test_cli_model_downloaded_by_name(monkeypatch, tmp_path, fixture_dir, fixture_files):
    explicit = embed(
        tmp_path,
        "explicit",
        "--options-file",
        str(fixture_dir / "options.json"),
        "--weight-file",
        str(fixture_dir / "lm_weights.hdf5"),
    )
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
        assert_same_vectors(embed(tmp_path, "named", "--model", "test-fixture"), explicit)
    # Offline now: the cache serves it.
    assert_same_vectors(embed(tmp_path, "offline", "--model", "test-fixture"), explicit)


def test_cli_model_errors(tmp_path, capsys, monkeypatch):
    from keras_elmo.cli import main

    src = tmp_path / "in.txt"
    src.write_text("a b\n")
    out = tmp_path / "o.hdf5"
    code = main(["embed", str(src), str(out), "--model", "elmo-huge-xx"])
    err = capsys.readouterr().err
    # One short line that says how to list the names, not all 49 of them.
    assert code == 2 and "'elmo-huge-xx'" in err and "keras-elmo presets" in err
    assert len(err.splitlines()) == 1 and len(err) < 300 and "allennlp-original-en" not in err
    code = main(
        ["embed", str(src), str(out), "--model", "elmo-small-en", "--options-file", "o.json"]
    )
    assert code == 2 and "--model" in capsys.readouterr().err
    # A preset that is not cached, offline: the URL and the cache path in one line.
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    code = main(["embed", str(src), str(out), "--model", "allennlp-small-en"])
    err = capsys.readouterr().err
    assert code == 2 and presets.get_preset("allennlp-small-en").downloads[0].url in err
    assert str(presets.preset_dir("allennlp-small-en")) in err
    assert not out.exists()


def test_cli_model_elmoformanylangs_directory(tmp_path, fixture_dir):
    from keras_elmo.jobs.embed_file import embed_file

    model_dir = fixture_dir.parent / "efml" / "model_zip"
    by_flag = embed(tmp_path, "flag", "--model", str(model_dir))
    direct = tmp_path / "direct.hdf5"
    embed_file(tmp_path / "in.txt", direct, None, None, efml_dir=model_dir)
    with h5py.File(direct, "r") as f:
        assert_same_vectors(by_flag, {i: f[str(i)][...] for i in range(3)})


def test_progress_bars_on_in_the_cli_off_in_library_calls(
    monkeypatch, tmp_path, capsys, fixture_files
):
    """One rule (keras_elmo.progress): `keras-elmo` shows download bars unless
    --quiet; library calls show none unless progress=True."""
    from keras_elmo.cli import main

    src = tmp_path / "in.txt"
    src.write_text("Hello !\n", encoding="utf-8")

    def fresh_cache(name):
        monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / name))

    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files)
        urls = server.url("/m/options.json"), server.url("/m/weights.hdf5")
        capsys.readouterr()
        # Library calls, defaults: no bar.
        fresh_cache("library")
        presets.fetch_preset("test-fixture")
        download.cached_url(urls[1])
        assert capsys.readouterr().err == ""
        # ... and a bar when asked for.
        fresh_cache("library-asked")
        presets.fetch_preset("test-fixture", progress=True)
        assert "weights.hdf5:" in capsys.readouterr().err
        # The command line: a bar for the preset and for URL files ...
        for name, flags in (
            ("cli-preset", ["--model", "test-fixture"]),
            ("cli-urls", ["--options-file", urls[0], "--weight-file", urls[1]]),
        ):
            fresh_cache(name)
            assert main(["embed", str(src), str(tmp_path / f"{name}.hdf5"), *flags]) == 0
            err = capsys.readouterr().err
            assert "weights.hdf5:" in err and "options.json:" in err, err
        # ... none with --quiet.
        fresh_cache("cli-quiet")
        out = str(tmp_path / "quiet.hdf5")
        assert main(["embed", str(src), out, "--quiet", "--model", "test-fixture"]) == 0
        assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ pinned presets


def test_a_preset_whose_file_changed_after_it_was_cached_is_refused(
    monkeypatch, fixture_files, cache
):
    """Not in the table's digests: pinned at the first download, checked at every use."""
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
        presets.fetch_preset("test-fixture")
        url = server.url("/m/weights.hdf5")
    weights = cache / "presets" / "test-fixture" / "weights.hdf5"
    original = hashlib.sha256(fixture_files["/m/weights.hdf5"]).hexdigest()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of one weight: still a loadable HDF5 file
    weights.write_bytes(bytes(data))
    changed = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(download.DownloadError) as err:
        ElmoLayer.from_preset("test-fixture")
    message = str(err.value)
    assert url in message and original in message and changed in message
    assert "refresh=True" in message and "--refresh" in message


def test_refresh_downloads_the_preset_again(monkeypatch, fixture_dir, fixture_files, cache):
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
        presets.fetch_preset("test-fixture")
        weights = cache / "presets" / "test-fixture" / "weights.hdf5"
        weights.write_bytes(b"damaged")
        with pytest.raises(download.DownloadError, match="changed since it was downloaded"):
            presets.fetch_preset("test-fixture")
        layer = ElmoLayer.from_preset(
            "test-fixture", refresh=True, stateful=True, output_mode="dict"
        )
        assert len(server.requests) == 4  # two files, twice
    assert_reproduces_fixture(layer, fixture_dir)
    assert weights.read_bytes() == fixture_files["/m/weights.hdf5"]


def test_cli_refresh(monkeypatch, tmp_path, fixture_files, cache, capsys):
    from keras_elmo.cli import main

    src = tmp_path / "in.txt"
    src.write_text("Hello !\n", encoding="utf-8")
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
        out = str(tmp_path / "o.hdf5")
        assert main(["embed", str(src), out, "--quiet", "--model", "test-fixture"]) == 0
        (cache / "presets" / "test-fixture" / "options.json").write_text("{}")
        capsys.readouterr()
        assert main(["embed", str(src), out, "--quiet", "--model", "test-fixture"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "--refresh" in err and "SHA-256" in err
        flags = ["--quiet", "--model", "test-fixture", "--refresh"]
        assert main(["embed", str(src), out, *flags]) == 0
        assert len(server.requests) == 4
    assert (cache / "presets" / "test-fixture" / "options.json").read_bytes() == (
        fixture_files["/m/options.json"]
    )


def test_a_dead_first_mirror_falls_through_to_the_second(
    monkeypatch, fixture_dir, fixture_files, cache
):
    with serve({}) as dead, serve(fixture_files) as alive:
        dead.stop()
        add_fixture_preset(monkeypatch, alive, fixture_files, first_mirror=dead)
        layer = ElmoLayer.from_preset("test-fixture", stateful=True, output_mode="dict")
        assert [r[1] for r in alive.requests] == ["/m/options.json", "/m/weights.hdf5"]
    assert_reproduces_fixture(layer, fixture_dir)


def test_a_cache_entry_that_fails_to_load_is_named_with_how_to_refresh_it(
    monkeypatch, fixture_files, cache, capsys
):
    """A truncated weights file, as an older version could leave in the cache."""
    from keras_elmo.cli import main

    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
    directory = cache / "presets" / "test-fixture"
    directory.mkdir(parents=True)
    (directory / "options.json").write_bytes(fixture_files["/m/options.json"])
    (directory / "weights.hdf5").write_bytes(fixture_files["/m/weights.hdf5"][:5000])
    with pytest.raises(ElmoError) as err:
        ElmoLayer.from_preset("test-fixture")
    message = str(err.value)
    assert f"{directory / 'weights.hdf5'} is a cache entry" in message
    assert "refresh=True" in message and "--refresh" in message and str(directory) in message
    src = directory.parent / "in.txt"
    src.write_text("Hello !\n", encoding="utf-8")
    code = main(["embed", str(src), str(src) + ".hdf5", "--quiet", "--model", "test-fixture"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "is a cache entry" in err, err


def test_refresh_is_an_option_of_every_command_that_takes_model():
    from keras_elmo.cli import build_parser

    parser = build_parser()
    for command in (["embed", "in.txt", "out.hdf5"], ["export", "out"], ["beam-embed"]):
        extra = ["--input", "x", "--output-dir", "y"] if command == ["beam-embed"] else []
        args = parser.parse_args([*command, *extra, "--model", "elmo-small-en", "--refresh"])
        assert args.refresh is True, command
        assert parser.parse_args([*command, *extra]).refresh is False, command


def test_beam_embed_refresh_refreshes_this_machines_cache(monkeypatch, fixture_files, cache):
    from keras_elmo import cli

    with serve(fixture_files) as server:
        add_fixture_preset(monkeypatch, server, fixture_files, checked=False)
        presets.fetch_preset("test-fixture")
        (cache / "presets" / "test-fixture" / "options.json").write_text("{}")
        argv = ["beam-embed", "--input", "x", "--output-dir", "y", "--model", "test-fixture"]
        cli._check_beam_embed(cli.build_parser().parse_args(argv))  # only checks the name
        assert len(server.requests) == 2
        cli._check_beam_embed(cli.build_parser().parse_args([*argv, "--refresh", "--quiet"]))
        assert len(server.requests) == 4
    assert (cache / "presets" / "test-fixture" / "options.json").read_bytes() == (
        fixture_files["/m/options.json"]
    )


def test_refresh_with_a_keras_file_is_a_clear_error(tmp_path, capsys):
    from keras_elmo.cli import main

    code = main(["export", str(tmp_path / "out"), "--keras-file", "m.keras", "--refresh"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "--refresh" in err and "--keras-file" in err
