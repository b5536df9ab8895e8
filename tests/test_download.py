"""keras_elmo.checkpoints.download against a file server on 127.0.0.1 (never the internet).

Expected bytes and digests come from the test's own data and hashlib, not
from the module under test.
"""

import hashlib
import io
import os
import zipfile

import pytest
from support.http_server import serve

from keras_elmo.checkpoints import download
from keras_elmo.errors import ElmoError

DATA = bytes(range(256)) * 4099  # ~1 MB, crosses the 1 MiB read block
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def cache(download_cache):
    return download_cache


def leftovers(directory):
    """Files in `directory` other than the final ones: temporaries and partials."""
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".part", ".tmp"))


def test_good_file_with_size_and_checksum(tmp_path):
    target = tmp_path / "out" / "weights.hdf5"
    with serve({"/w.hdf5": DATA}) as server:
        path = download.fetch(
            server.url("/w.hdf5"), target, size=len(DATA), sha256=SHA, progress=False
        )
    assert path == target
    assert target.read_bytes() == DATA
    assert leftovers(target.parent) == []
    assert server.requests == [("GET", "/w.hdf5", None)]


def test_good_file_without_known_size_uses_content_length(tmp_path):
    target = tmp_path / "f.json"
    with serve({"/f.json": b'{"a": 1}'}) as server:
        download.fetch(server.url("/f.json"), target, progress=False)
    assert target.read_bytes() == b'{"a": 1}'


def test_truncated_file_is_kept_as_part_then_resumed_with_range(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "truncate"
        with pytest.raises(download.DownloadError) as err:
            download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
        half = len(DATA) // 2
        message = str(err.value)
        assert f"stopped after {half} of {len(DATA)} bytes" in message
        assert server.url("/w") in message
        assert not target.exists()
        part = tmp_path / "w.hdf5.part"
        assert part.stat().st_size == half
        assert part.read_bytes() == DATA[:half]

        del server.faults["/w"]
        download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
    assert target.read_bytes() == DATA
    assert not part.exists()
    assert server.requests[-1] == ("GET", "/w", f"bytes={half}-")


def test_truncated_without_content_length_is_caught_by_the_known_size(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "no-length"
        with pytest.raises(download.DownloadError, match=f"of {len(DATA)} bytes"):
            download.fetch(server.url("/w"), target, size=len(DATA), progress=False)
    assert not target.exists()


def test_resume_when_the_server_ignores_range(tmp_path):
    target = tmp_path / "w.hdf5"
    part = tmp_path / "w.hdf5.part"
    part.write_bytes(b"\xff" * 1000)  # stale bytes that must not survive
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "ignore-range"
        download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
    assert server.requests == [("GET", "/w", "bytes=1000-")]
    assert target.read_bytes() == DATA


def test_partial_file_that_is_already_whole_gets_a_416_and_starts_over(tmp_path):
    target = tmp_path / "w.hdf5"
    (tmp_path / "w.hdf5.part").write_bytes(DATA)
    with serve({"/w": DATA}) as server:
        download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
    assert [r[2] for r in server.requests] == [f"bytes={len(DATA)}-", None]
    assert target.read_bytes() == DATA


def test_404_names_the_url_and_the_cache_path(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({}) as server:
        with pytest.raises(download.DownloadError) as err:
            download.fetch(server.url("/missing.hdf5"), target, progress=False)
    message = str(err.value)
    assert "HTTP 404" in message and server.url("/missing.hdf5") in message
    assert str(target) in message
    assert isinstance(err.value, ElmoError) and isinstance(err.value, OSError)
    assert leftovers(tmp_path) == []
    assert not target.exists()


def test_a_failed_download_leaves_no_lock_file(tmp_path):
    """Nothing answers on the port (the server is stopped): no `.lock` stays, in
    fetch and in fetch_archive; a good download leaves none either."""
    with serve({"/w": DATA}) as server:
        url = server.url("/w")
        download.fetch(url, tmp_path / "good" / "w.hdf5", progress=False)
        server.stop()
        for fetcher, target in (
            (download.fetch, tmp_path / "preset" / "options.json"),
            (download.fetch_archive, tmp_path / "efml" / "model"),
        ):
            with pytest.raises(download.DownloadError, match="could not download"):
                fetcher(url, target, progress=False)
            assert list(target.parent.iterdir()) == [], fetcher
    assert [p.name for p in (tmp_path / "good").iterdir()] == ["w.hdf5"]


@pytest.mark.slow
def test_the_lock_is_exclusive_and_survives_its_removal_by_the_holder(tmp_path):
    """A second holder waits for the first; after the first removed the file, the
    next lock is a new file, held by one process at a time."""
    import subprocess
    import sys
    import textwrap

    lock = tmp_path / "x.lock"
    log = tmp_path / "log"
    script = textwrap.dedent(
        f"""\
        import sys, time
        from keras_elmo.checkpoints import download
        with download._exclusive({str(lock)!r}):
            with open({str(log)!r}, "a") as f:
                f.write("in " + sys.argv[1] + "\\n")
            time.sleep(0.3)
            with open({str(log)!r}, "a") as f:
                f.write("out " + sys.argv[1] + "\\n")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    lines = log.read_text().splitlines()
    # Never two inside at once: each "in" is followed by its own "out".
    assert len(lines) == 6
    for first, second in zip(lines[::2], lines[1::2]):
        assert first.split()[0] == "in" and second == "out " + first.split()[1], lines
    assert not lock.exists()


def test_wrong_checksum_removes_the_download(tmp_path):
    target = tmp_path / "w.hdf5"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with serve({"/w": DATA}) as server:
        with pytest.raises(download.DownloadError) as err:
            download.fetch(server.url("/w"), target, sha256=wrong, progress=False)
    assert f"SHA-256 {SHA} does not match the expected {wrong}" in str(err.value)
    assert not target.exists() and leftovers(tmp_path) == []


def test_wrong_size_from_the_server_is_refused(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        with pytest.raises(download.DownloadError, match=f"is {len(DATA)} bytes, not the"):
            download.fetch(server.url("/w"), target, size=len(DATA) + 1, progress=False)
    assert not target.exists()


def test_cached_then_offline(cache):
    with serve({"/m/weights.hdf5": DATA}) as server:
        url = server.url("/m/weights.hdf5")
        first = download.cached_url(url, sha256=SHA, progress=False)
        other_url = server.url("/m/other.hdf5")
    # The server is gone: the cached file is served without the network...
    assert download.cached_url(url, sha256=SHA, progress=False) == first
    assert first.read_bytes() == DATA
    assert cache in first.parents and first.name == "weights.hdf5"
    # ...and a file that was never fetched is a clear error.
    with pytest.raises(download.DownloadError) as err:
        download.cached_url(other_url, progress=False)
    message = str(err.value)
    assert other_url in message
    assert str(download.url_cache_path(other_url)) in message


def test_offline_variable_never_touches_the_network(monkeypatch):
    with serve({"/w": DATA}) as server:
        monkeypatch.setenv(download.OFFLINE_ENV, "1")
        with pytest.raises(download.DownloadError, match=download.OFFLINE_ENV) as err:
            download.cached_url(server.url("/w"), progress=False)
        assert server.requests == []
    assert server.url("/w") in str(err.value)


def test_a_cached_file_of_the_wrong_size_is_fetched_again(tmp_path):
    target = tmp_path / "w.hdf5"
    target.write_bytes(DATA[:10])
    with serve({"/w": DATA}) as server:
        download.fetch(server.url("/w"), target, size=len(DATA), progress=False)
    assert target.read_bytes() == DATA


def test_cache_dir_variable_and_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "mine"))
    assert download.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(download.CACHE_ENV)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert download.cache_dir() == tmp_path / "kh" / "keras_elmo"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.cache_dir() == tmp_path / ".keras" / "keras_elmo"


def test_urls_with_the_same_file_name_do_not_collide():
    a = download.url_cache_path("https://a.example/x/weights.hdf5")
    b = download.url_cache_path("https://b.example/x/weights.hdf5")
    assert a.name == b.name == "weights.hdf5" and a != b


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_archive_is_unpacked_atomically_and_cached(tmp_path):
    archive = zip_bytes({"model/config.json": b"{}", "model/char.dic": b"a\t1\n"})
    target = tmp_path / "presets" / "efml-xx" / "model"
    with serve({"/xx.zip": archive}) as server:
        url = server.url("/xx.zip")
        path = download.fetch_archive(
            url, target, sha256=hashlib.sha256(archive).hexdigest(), progress=False
        )
    assert path == target
    assert (target / "model" / "config.json").read_bytes() == b"{}"
    assert (target / "model" / "char.dic").read_bytes() == b"a\t1\n"
    # Only the unpacked directory stays: no zip, no staging dir, no lock file.
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]
    # Offline afterwards: the directory is the cache.
    assert download.fetch_archive(url, target, offline=True) == target


def test_archive_with_a_member_outside_the_directory_is_refused(tmp_path):
    archive = zip_bytes({"../evil.txt": b"x"})
    target = tmp_path / "t" / "model"
    with serve({"/a.zip": archive}) as server:
        with pytest.raises(download.DownloadError, match="outside the directory"):
            download.fetch_archive(server.url("/a.zip"), target, progress=False)
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists()
    assert [p for p in target.parent.iterdir() if p.is_dir()] == []


def test_archive_that_is_not_a_zip_is_refused_and_removed(tmp_path):
    target = tmp_path / "t" / "model"
    with serve({"/a.zip": b"not a zip at all"}) as server:
        with pytest.raises(download.DownloadError, match="not a valid zip archive"):
            download.fetch_archive(server.url("/a.zip"), target, progress=False)
    assert [p.name for p in target.parent.iterdir()] == []


def test_progress_bar_reports_bytes_to_stderr(tmp_path, capsys):
    with serve({"/w": DATA}) as server:
        download.fetch(server.url("/w"), tmp_path / "w", progress=True)
    err = capsys.readouterr().err
    assert "w:" in err and "100%" in err
    assert os.path.getsize(tmp_path / "w") == len(DATA)
