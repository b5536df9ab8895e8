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
    return sorted(
        p.name for p in directory.iterdir() if p.name.endswith((".part", ".tmp", ".part.json"))
    )


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


def interrupted(server, target):
    """Leave half of the file at /w in `target`'s .part (a cut connection)."""
    server.faults["/w"] = "truncate"
    with pytest.raises(download.DownloadError, match="stopped after"):
        download.fetch(server.url("/w"), target, progress=False)
    del server.faults["/w"]
    part = target.with_name(target.name + ".part")
    assert part.stat().st_size == len(DATA) // 2


def test_resume_when_the_server_ignores_range(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        interrupted(server, target)
        server.faults["/w"] = "ignore-range"  # answers the Range request with 200
        download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
    assert server.requests[-1] == ("GET", "/w", f"bytes={len(DATA) // 2}-")
    assert target.read_bytes() == DATA


def test_partial_file_that_is_already_whole_gets_a_416_and_starts_over(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        interrupted(server, target)
        with open(tmp_path / "w.hdf5.part", "ab") as part:
            part.write(DATA[len(DATA) // 2 :])
        download.fetch(server.url("/w"), target, sha256=SHA, progress=False)
    assert [r[2] for r in server.requests][1:] == [f"bytes={len(DATA)}-", None]
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
    # The file and its record (URL and SHA-256), nothing else.
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == [
        "w.hdf5",
        "w.hdf5.source.json",
    ]


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
    # Only the unpacked directory and its record stay: no zip, no staging dir,
    # no lock file.
    assert sorted(p.name for p in target.parent.iterdir()) == ["model", "model.source.json"]
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


# ------------------------------------------------------------------ whole or absent
# A body that cannot be shown to be whole never reaches the final name.

OTHER = bytes(reversed(DATA))  # the same length, other bytes: "the file changed"
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()


def nothing_cached(target):
    """Nothing under the final name, and no partial either."""
    return not target.exists() and leftovers(target.parent) == []


def test_a_short_body_without_a_length_is_refused(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "no-length"
        with pytest.raises(download.DownloadError, match="no Content-Length") as err:
            download.fetch(server.url("/w"), target, progress=False)
    assert server.url("/w") in str(err.value)
    assert nothing_cached(target)


def test_a_body_without_a_length_is_kept_when_its_pinned_digest_matches(tmp_path):
    target = tmp_path / "f"
    with serve({"/f": DATA}) as server:
        server.faults["/f"] = "no-length"  # sends the first half
        half = DATA[: len(DATA) // 2]
        download.fetch(
            server.url("/f"), target, sha256=hashlib.sha256(half).hexdigest(), progress=False
        )
    assert target.read_bytes() == half


def test_a_non_numeric_content_length_is_refused(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "bad-length"
        with pytest.raises(download.DownloadError, match="'12abc'"):
            download.fetch(server.url("/w"), target, size=len(DATA), progress=False)
    assert nothing_cached(target)


def test_a_206_to_a_request_without_range_is_refused(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "always-206"
        with pytest.raises(download.DownloadError, match="206") as err:
            download.fetch(server.url("/w"), target, progress=False)
    assert server.requests == [("GET", "/w", None)]
    assert "without a Range" in str(err.value)
    assert nothing_cached(target)


def test_a_resume_sends_the_validator_of_the_partial_file(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        interrupted(server, target)
        download.fetch(server.url("/w"), target, progress=False)
    assert target.read_bytes() == DATA
    last = server.headers[-1]
    assert last["Range"] == f"bytes={len(DATA) // 2}-"
    assert last["If-Range"] == '"' + SHA[:16] + '"'  # the ETag the first answer carried


def test_a_source_that_changed_during_a_resume_restarts_from_zero(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        interrupted(server, target)
        server.files["/w"] = OTHER  # the file on the server changed meanwhile
        download.fetch(server.url("/w"), target, progress=False)
    # The whole new file, not the old first half glued to the new second half.
    assert target.read_bytes() == OTHER
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_if_range_is_caught_by_the_new_etag(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        interrupted(server, target)
        server.files["/w"] = OTHER
        server.faults["/w"] = "ignore-if-range"  # answers 206 with the new file's rest
        download.fetch(server.url("/w"), target, progress=False)
        ranges = [r[2] for r in server.requests]
    assert target.read_bytes() == OTHER
    # The 206 of the other version was dropped and the file fetched from byte 0.
    assert ranges[-2:] == [f"bytes={len(DATA) // 2}-", None]


def test_a_partial_file_without_a_validator_is_not_resumed(tmp_path):
    target = tmp_path / "w.hdf5"
    (tmp_path / "w.hdf5.part").write_bytes(OTHER[:1000])  # whose bytes? unknown
    with serve({"/w": DATA}) as server:
        download.fetch(server.url("/w"), target, progress=False)
    assert server.requests == [("GET", "/w", None)]
    assert target.read_bytes() == DATA


def test_an_endless_body_stops_at_the_byte_cap(tmp_path):
    target = tmp_path / "w.hdf5"
    cap = 3 << 20
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "endless"
        with pytest.raises(download.DownloadError, match=f"over the limit of {cap} bytes"):
            # A pinned digest lets a body without a length in; the cap still holds.
            download.fetch(server.url("/w"), target, sha256=SHA, max_bytes=cap, progress=False)
    assert nothing_cached(target)


def test_a_content_length_over_the_byte_cap_is_refused_before_the_body(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        with pytest.raises(download.DownloadError, match="over the limit of 1000 bytes"):
            download.fetch(server.url("/w"), target, max_bytes=1000, progress=False)
    assert nothing_cached(target)


def test_the_default_byte_cap_is_the_model_size_limit():
    from keras_elmo import options

    # 4 bytes per weight at the parameter limit, plus 1 GiB for everything else.
    assert download.MAX_DOWNLOAD_BYTES == 4 * options.MAX_PARAMETERS + (1 << 30)


def test_a_trickling_body_stops_at_the_deadline(tmp_path):
    import time

    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        server.faults["/w"] = "trickle"  # one byte every 50 ms: 14 hours for 1 MB
        began = time.monotonic()
        with pytest.raises(download.DownloadError, match="deadline of 0.4 s") as err:
            download.fetch(server.url("/w"), target, deadline=0.4, progress=False)
        took = time.monotonic() - began
    assert 0.4 <= took < 3, took
    assert server.url("/w") in str(err.value)
    assert not target.exists()


def test_the_default_deadline_allows_the_minimum_rate():
    # 60 s, then at least MIN_RATE bytes a second on average.
    assert download.default_deadline(0) == 60
    assert download.default_deadline(100 * download.MIN_RATE) == 160


@pytest.fixture(scope="module")
def zip_bomb():
    """A 1 MB zip holding one 1 GiB member of zeros, as the issue describes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("model/weights.hdf5", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(1024):
                member.write(block)
    data = buffer.getvalue()
    assert len(data) < 1_100_000
    return data


def test_an_archive_that_unpacks_to_far_more_than_its_size_is_refused(tmp_path, zip_bomb):
    target = tmp_path / "t" / "model"
    with serve({"/bomb.zip": zip_bomb}) as server:
        with pytest.raises(download.DownloadError, match="unpacks to 1073741824 bytes") as err:
            download.fetch_archive(server.url("/bomb.zip"), target, progress=False)
    assert "over the limit" in str(err.value)
    assert list(target.parent.iterdir()) == []  # no directory, no staging, no zip


def test_an_archive_whose_members_lie_about_their_size_is_refused(tmp_path):
    """A member that declares 10 bytes and holds 100,000: refused while unpacking."""
    honest = zip_bytes({"model/a": b"x" * 100_000})
    # Rewrite the declared uncompressed size (local header and central directory).
    lying = honest.replace((100_000).to_bytes(4, "little"), (10).to_bytes(4, "little"))
    assert lying != honest
    target = tmp_path / "t" / "model"
    with serve({"/a.zip": lying}) as server:
        with pytest.raises(download.DownloadError, match="a.zip"):
            download.fetch_archive(server.url("/a.zip"), target, progress=False)
    assert list(target.parent.iterdir()) == []


def test_the_unpacked_size_limit_follows_the_archive_size():
    assert download.unpack_limit(1_000_000) == 100 * 1_000_000
    assert download.unpack_limit(1000) == 64 << 20  # small archives: 64 MiB
    assert download.unpack_limit(10**12) == download.MAX_DOWNLOAD_BYTES


# ------------------------------------------------------------------ pinned on first use


def test_a_cached_file_that_changed_is_refused_naming_the_url_and_both_digests(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        url = server.url("/w")
        download.fetch(url, target, progress=False)
    target.write_bytes(OTHER)  # same size, other bytes
    with pytest.raises(download.DownloadError) as err:
        download.fetch(url, target, progress=False)
    message = str(err.value)
    assert url in message and SHA in message and OTHER_SHA in message
    assert "refresh" in message
    assert target.read_bytes() == OTHER  # left for the user to look at


def test_a_file_that_changed_on_the_server_is_refused_on_a_second_download(tmp_path):
    """The digest recorded at the first download holds for later downloads too."""
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        url = server.url("/w")
        download.fetch(url, target, progress=False)
        target.unlink()  # lost from the cache; its record stays
        server.files["/w"] = OTHER
        with pytest.raises(download.DownloadError) as err:
            download.fetch(url, target, progress=False)
    assert SHA in str(err.value) and OTHER_SHA in str(err.value)
    assert nothing_cached(target)


def test_refresh_downloads_again_and_pins_the_new_file(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as server:
        url = server.url("/w")
        download.fetch(url, target, progress=False)
        server.files["/w"] = OTHER
        # Without refresh the cache is used and the server not asked.
        assert download.fetch(url, target, progress=False).read_bytes() == DATA
        assert len(server.requests) == 1
        download.fetch(url, target, refresh=True, progress=False)
        assert target.read_bytes() == OTHER
        assert len(server.requests) == 2
    # The new file is the one pinned now: it loads offline without complaint.
    assert download.fetch(url, target, offline=True).read_bytes() == OTHER


def test_refresh_cannot_override_a_digest_pinned_by_the_caller(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": OTHER}) as server:
        with pytest.raises(download.DownloadError, match=f"expected {SHA}"):
            download.fetch(server.url("/w"), target, sha256=SHA, refresh=True, progress=False)
    assert nothing_cached(target)


def test_a_cached_archive_that_changed_is_refused(tmp_path):
    archive = zip_bytes({"model/config.json": b"{}", "model/char.dic": b"a\t1\n"})
    target = tmp_path / "p" / "model"
    with serve({"/xx.zip": archive}) as server:
        url = server.url("/xx.zip")
        download.fetch_archive(url, target, progress=False)
    (target / "model" / "char.dic").write_bytes(b"b\t1\n")
    with pytest.raises(download.DownloadError, match="changed since it was downloaded") as err:
        download.fetch_archive(url, target, offline=True)
    assert url in str(err.value)


def test_a_file_cached_by_an_older_version_is_pinned_at_its_first_use(tmp_path):
    target = tmp_path / "w.hdf5"
    target.write_bytes(DATA)  # no record beside it: copied by hand or an older version
    url = "http://127.0.0.1:9/never-asked"
    assert download.fetch(url, target, offline=True) == target
    target.write_bytes(OTHER)
    with pytest.raises(download.DownloadError, match=OTHER_SHA):
        download.fetch(url, target, offline=True)


# ------------------------------------------------------------------ mirrors


def test_a_dead_first_mirror_falls_through_to_the_second(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": DATA}) as dead, serve({"/w": DATA}) as alive:
        dead_url = dead.url("/w")
        dead.stop()
        path = download.fetch([dead_url, alive.url("/w")], target, sha256=SHA, progress=False)
    assert path.read_bytes() == DATA
    assert alive.requests == [("GET", "/w", None)]


def test_every_mirror_failing_names_each_one(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({}) as first, serve({}) as second:
        urls = [first.url("/w"), second.url("/w")]
        with pytest.raises(download.DownloadError) as err:
            download.fetch(urls, target, progress=False)
    message = str(err.value)
    assert all(url in message for url in urls) and message.count("HTTP 404") == 2
    assert nothing_cached(target)


def test_a_mirror_with_other_bytes_is_refused_and_the_next_one_tried(tmp_path):
    target = tmp_path / "w.hdf5"
    with serve({"/w": OTHER}) as wrong, serve({"/w": DATA}) as right:
        download.fetch([wrong.url("/w"), right.url("/w")], target, sha256=SHA, progress=False)
    assert target.read_bytes() == DATA


def test_the_cache_note_of_a_cache_entry(tmp_path, cache):
    path = download.url_cache_path("https://example.org/m/weights.hdf5")
    note = download.cache_entry_note(path)
    assert "cache entry" in note and "refresh" in note and str(path.parent) in note
    assert download.cache_entry_note(tmp_path / "elsewhere.hdf5") == ""


def test_only_http_and_https_urls_are_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the cache")
    for url in (secret.as_uri(), "ftp://127.0.0.1/w", [], ["http://127.0.0.1/w", 3]):
        with pytest.raises(download.DownloadError, match="http"):
            download.fetch(url, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()
