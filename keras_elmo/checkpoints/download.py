"""Fetch model files over HTTP(S) into a local cache: whole, pinned, bounded.

A file is downloaded once into the cache and read from there afterwards,
without touching the network (so everything works offline once cached).

Whole or absent. Bytes go to `NAME.part` beside the target; the file is
renamed to its final name only when its length is known and matched (the
server's numeric `Content-Length`, or the size the caller pins) or its
SHA-256 is pinned and matched. A body without a length, a non-numeric
`Content-Length` and a 206 answering a request without `Range` are refused.
An interrupted download keeps its `.part` (and `NAME.part.json`, the
validator the server gave: its ETag or Last-Modified); the next attempt asks
for the rest with `Range` + `If-Range`, so a file that changed on the
server meanwhile is fetched again from byte 0 rather than glued to the old
half. Every download is bounded: at most `MAX_DOWNLOAD_BYTES` (from the
model size limit) and a deadline of 60 s plus one second per `MIN_RATE`
bytes. Archives are unpacked into a temporary directory beside the target,
their members' sizes (declared, then actual) summed against `unpack_limit`.

Pinned on first use. Beside each cache entry `NAME.source.json` records the
URL it came from and its SHA-256 (for an unpacked archive, a digest of its
files). Every later use hashes the entry again: a changed entry is an error
naming the URL and both digests, and a later download of the same entry
must match the recorded digest too. `refresh=True` downloads on purpose and
records the new digest. A caller's pinned `sha256` always wins.

Mirrors: `fetch` and `fetch_archive` take one URL or a sequence of them,
tried in order; the error names each one's failure when all fail.

This module imports neither TensorFlow nor Keras: the command line resolves
models before it loads TensorFlow.
"""

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from keras_elmo import options as options_lib
from keras_elmo.errors import ElmoError
from keras_elmo.progress import progress_bar

CACHE_ENV = "KERAS_ELMO_CACHE"
OFFLINE_ENV = "KERAS_ELMO_OFFLINE"
# Seconds without a byte from the server before a download is given up.
TIMEOUT = 60
CHUNK_BYTES = 1 << 20
# The largest model the loaders accept is options.MAX_PARAMETERS float32
# weights; a file (or an unpacked archive) may be that plus 1 GiB of
# containers, lexicons and metadata, no more.
MAX_DOWNLOAD_BYTES = 4 * options_lib.MAX_PARAMETERS + (1 << 30)
# A download may take DEADLINE_GRACE seconds plus one second per MIN_RATE
# bytes (64 KiB/s: the published original, 374 MB, gets 1.6 hours).
DEADLINE_GRACE = 60
MIN_RATE = 64 << 10
# An archive may unpack to MAX_UNPACK_RATIO times its size (at least
# MIN_UNPACK_LIMIT, at most MAX_DOWNLOAD_BYTES); float32 weights barely
# compress, text lexicons about 3-5x.
MAX_UNPACK_RATIO = 100
MIN_UNPACK_LIMIT = 64 << 20
MAX_ARCHIVE_MEMBERS = 100_000
RECORD_SUFFIX = ".source.json"
_DIGITS = re.compile(r"[0-9]+")


class DownloadError(ElmoError, OSError):
    """A file could not be fetched, or what arrived is not the expected file."""


def cache_dir():
    """The cache root: $KERAS_ELMO_CACHE, else `keras_elmo/` in Keras's cache.

    Keras keeps its downloads in $KERAS_HOME (default `~/.keras`, or
    `/tmp/.keras` when the home directory is not writable); this follows the
    same rule without importing Keras.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home:
        base = Path(keras_home).expanduser()
    else:
        base = Path.home() / ".keras"
        if not os.access(base if base.exists() else Path.home(), os.W_OK):
            base = Path(tempfile.gettempdir()) / ".keras"
    return base / "keras_elmo"


def is_url(path):
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def offline_requested():
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def url_cache_path(url):
    """Where the file at `url` is cached: a directory per URL, the file's own name inside.

    The directory is named by a hash of the whole URL (two URLs with the same
    file name must not collide); the file keeps its name so that a user
    looking into the cache sees what it is.
    """
    name = _url_file_name(url, "download")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "urls" / digest / name


def _url_file_name(url, default):
    """The last segment of `url`'s path (its file name), or `default` when empty."""
    return os.path.basename(urllib.parse.urlparse(url).path) or default


def cached_url(url, **options):
    """The local path of `url`, downloading it into the cache on first use.

    `options` are `fetch`'s keyword arguments (`size`, `sha256`, `progress`,
    `offline`, `refresh`, ...), with its defaults.
    """
    return fetch(url, url_cache_path(url), **options)


def default_deadline(size):
    """Seconds a download of `size` bytes may take: DEADLINE_GRACE + size / MIN_RATE."""
    return DEADLINE_GRACE + size / MIN_RATE


def unpack_limit(archive_size):
    """The most bytes an archive of `archive_size` bytes may unpack to."""
    return min(MAX_DOWNLOAD_BYTES, max(MIN_UNPACK_LIMIT, MAX_UNPACK_RATIO * archive_size))


def fetch(
    url,
    target,
    *,
    size=None,
    sha256=None,
    progress=False,
    offline=None,
    refresh=False,
    max_bytes=None,
    deadline=None,
):
    """Download `url` to `target` unless it is already there; returns the Path.

    Args:
        url: an http(s) address, or a sequence of them (mirrors of one
            file), tried in order until one gives the file.
        target: the final path (its directory is created).
        size: the expected size in bytes, if known (otherwise the server's
            Content-Length is checked; a body with neither is refused unless
            `sha256` is given).
        sha256: the expected hex digest, if known. Otherwise the digest of
            the first download is recorded beside the file and checked at
            every later use and download.
        progress: show a tqdm progress bar on stderr (`keras_elmo.progress`);
            off by default, as in every library call (the command line turns
            it on unless `--quiet`).
        offline: never use the network (default: $KERAS_ELMO_OFFLINE).
        refresh: download again even if cached, and record the new digest
            (a pinned `sha256` still has to match).
        max_bytes: refuse a file larger than this (default MAX_DOWNLOAD_BYTES).
        deadline: seconds the download may take (default
            `default_deadline(size)`); a partial file is kept for a retry.
    """
    urls = _as_urls(url)
    target = Path(target)
    if not refresh and target.is_file() and _cached_entry_ok(urls, target, size, sha256):
        return target
    if offline is None:
        offline = offline_requested()
    if offline:
        raise DownloadError(
            f"{urls[0]} is not in the cache ({target}) and downloads are off "
            f"({OFFLINE_ENV} is set). Download it once while online, or copy the file there."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with _exclusive(target.with_name(target.name + ".lock")):
        if not refresh and target.is_file() and _cached_entry_ok(urls, target, size, sha256):
            # Another process finished the same download while we waited.
            return target
        # A file pinned by the caller, else by the first download (its record
        # outlives a lost file: a later download must be the same file). A
        # refresh keeps the old file until the new one is whole.
        pinned = sha256.lower() if sha256 else None
        if pinned is None and not refresh:
            pinned = (_read_record(target) or {}).get("sha256")
        failures = []
        for one in urls:
            try:
                _download(
                    one, target, part, size, pinned, sha256 is None, progress, max_bytes, deadline
                )
            except DownloadError as err:
                failures.append((one, err))
                continue
            record = {"url": one, "sha256": file_sha256(part), "size": part.stat().st_size}
            _write_record(target, record)
            os.replace(part, target)
            return target
    raise _all_failed(failures)


def fetch_archive(url, target_dir, *, sha256=None, refresh=False, max_bytes=None, **fetch_options):
    """Download the zip archive at `url` and unpack it as directory `target_dir`.

    `url` may be a sequence of mirrors, and `sha256`, `refresh` and the other
    keyword arguments (`size`, `progress`, `offline`, `deadline`) are
    `fetch`'s, for the archive file; `max_bytes` is the unpacked size's
    bound, not the archive's. The archive itself is
    removed once unpacked: the directory is what is cached, and it appears
    under its final name only when complete. Its members may sum to
    `max_bytes` (default `unpack_limit(archive size)`), checked against their
    declared sizes before and their actual bytes while unpacking. A digest
    of the unpacked files is recorded beside the directory and checked at
    every later use.
    """
    urls = _as_urls(url)
    target_dir = Path(target_dir)
    if not refresh and target_dir.is_dir() and _cached_tree_ok(urls, target_dir):
        return target_dir
    archive_name = _url_file_name(urls[0], "archive.zip")
    lock = target_dir.with_name(target_dir.name + ".lock")
    if sha256 is None and not refresh:
        # The directory was lost but its record kept: the same archive again.
        sha256 = (_read_record(target_dir) or {}).get("archive_sha256")
    archive = fetch(
        urls,
        target_dir.with_name(f"{target_dir.name}.{archive_name}"),
        sha256=sha256,
        refresh=refresh,
        **fetch_options,
    )
    with _exclusive(lock):
        if target_dir.is_dir() and not refresh:
            _forget(archive)
            return target_dir
        limit = max_bytes if max_bytes is not None else unpack_limit(archive.stat().st_size)
        staging = Path(tempfile.mkdtemp(prefix=target_dir.name + ".", dir=target_dir.parent))
        try:
            _unzip(archive, staging, urls[0], limit)
            record = {
                "url": (_read_record(archive) or {}).get("url", urls[0]),
                "sha256": tree_sha256(staging),
                "archive_sha256": file_sha256(archive),
            }
            if target_dir.is_dir():  # refresh: the old directory goes once the new is whole
                old = Path(
                    tempfile.mkdtemp(prefix=target_dir.name + ".old.", dir=target_dir.parent)
                )
                os.replace(target_dir, old / "old")
                shutil.rmtree(old, ignore_errors=True)
            _write_record(target_dir, record)
            os.replace(staging, target_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            _forget(archive)
    return target_dir


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(directory):
    """One digest of a directory's files: their relative paths and contents, sorted."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() or p.is_symlink()):
        content = file_sha256(path) if path.is_file() and not path.is_symlink() else "link"
        digest.update(f"{path.relative_to(directory).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def cache_entry_note(path):
    """'(... is a cache entry ...; how to refresh it)' for a path in the cache, else ''.

    For errors about a file that failed to load: a truncated or damaged
    cache entry (for example one written by an older version) is then
    named as such, with the way to download it again.
    """
    try:
        root = cache_dir().resolve()
        resolved = Path(path).resolve()
        parts = resolved.relative_to(root).parts
    except (OSError, ValueError, TypeError):
        return ""
    if len(parts) < 3 or parts[0] not in ("presets", "urls"):
        return ""
    entry_dir = root / parts[0] / parts[1]
    source = ""
    for candidate in (resolved, *resolved.parents):
        if candidate == entry_dir:
            break
        record = _read_record(candidate)
        if record and record.get("url"):
            source = f" downloaded from {record['url']}"
            break
    return (
        f" ({resolved} is a cache entry{source}; to download it again pass refresh=True, "
        f"or --refresh on the command line, or delete {entry_dir})"
    )


@contextlib.contextmanager
def cache_entry_errors(*paths):
    """Add `cache_entry_note` to an ElmoError raised inside about one of `paths`.

    The note names the path the message names (else the first of `paths`
    in the cache); errors about files outside the cache pass unchanged.
    """
    try:
        yield
    except ElmoError as err:
        message = err.args[0] if err.args and isinstance(err.args[0], str) else None
        if message is None:
            raise
        named = sorted(paths, key=lambda p: os.fspath(p) not in message)
        note = next((n for n in map(cache_entry_note, named) if n), "")
        if note and note not in message:
            err.args = (message.rstrip() + note, *err.args[1:])
        raise


# ------------------------------------------------------------------ records


def _record_path(entry):
    entry = Path(entry)
    return entry.with_name(entry.name + RECORD_SUFFIX)


def _read_record(entry):
    try:
        with open(_record_path(entry), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None
    return record


def _write_record(entry, record):
    path = _record_path(entry)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _forget(entry):
    """Remove a cache file, its record and any partial download of it."""
    entry = Path(entry)
    for path in (
        entry,
        _record_path(entry),
        entry.with_name(entry.name + ".part"),
        entry.with_name(entry.name + ".part.json"),
    ):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()


def _changed_error(url, entry, recorded, now):
    return DownloadError(
        f"{entry} changed since it was downloaded from {url}: its SHA-256 was {recorded} "
        f"and is now {now}. Pass refresh=True (the command line: --refresh) to download "
        "it again, or delete the file."
    )


def _cached_entry_ok(urls, target, size, sha256):
    """True if the cached `target` is the file: its record's digest checked (raises if not).

    False (the entry is removed) when it is stale: another size or digest
    than the caller now pins. A file without a record (copied by hand or
    left by an older version) is pinned now, at its first use.
    """
    record = _read_record(target)
    pinned = sha256.lower() if sha256 else None
    actual_size = target.stat().st_size
    if (size is not None and actual_size != size) or (
        record and pinned and record["sha256"] != pinned
    ):
        # From an older table, or damaged: fetch it again.
        _forget(target)
        return False
    digest = file_sha256(target)
    if record is None:
        if pinned and digest != pinned:
            _forget(target)
            return False
        _write_record(target, {"url": urls[0], "sha256": digest, "size": actual_size})
        return True
    if digest != record["sha256"]:
        raise _changed_error(record.get("url", urls[0]), target, record["sha256"], digest)
    return True


def _cached_tree_ok(urls, target_dir):
    record = _read_record(target_dir)
    digest = tree_sha256(target_dir)
    if record is None:
        _write_record(target_dir, {"url": urls[0], "sha256": digest})
        return True
    if digest != record["sha256"]:
        raise _changed_error(record.get("url", urls[0]), target_dir, record["sha256"], digest)
    return True


def _as_urls(url):
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls or not all(is_url(u) for u in urls):
        raise DownloadError(f"expected an http(s) URL or a sequence of them, got {url!r}.")
    return urls


def _all_failed(failures):
    if len(failures) == 1:
        return failures[0][1]
    said = "; ".join(f"{url}: {err}" for url, err in failures)
    return DownloadError(f"no mirror gave the file ({len(failures)} tried): {said}")


# ------------------------------------------------------------------ one download


def _download(url, target, part, size, pinned, trust_first, progress, max_bytes, deadline):
    """Bring (the rest of) `url` into `part` and check it is whole; raises DownloadError."""
    cap = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    expected = _receive(url, target, part, size, pinned, progress, cap, deadline)
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise DownloadError(
            f"download of {url} stopped after {got} of {expected} bytes; the partial "
            f"file {part} is kept and the next attempt resumes from it."
        )
    if expected is not None and got > expected:
        _drop_partial(part)
        raise DownloadError(
            f"{url} sent {got} bytes, more than the expected {expected}; the file was "
            f"removed (cache: {target})."
        )
    if pinned is not None:
        digest = file_sha256(part)
        if digest != pinned:
            _drop_partial(part)
            if trust_first:
                raise DownloadError(
                    f"{url} is not the file first downloaded into {target}: its SHA-256 "
                    f"was {pinned} and is now {digest}; the download was removed. Pass "
                    "refresh=True (the command line: --refresh) to accept the new file."
                )
            raise DownloadError(
                f"{url}: SHA-256 {digest} does not match the expected {pinned}; the "
                f"download was removed (cache: {target})."
            )
    _drop_partial(part, keep_body=True)


def _drop_partial(part, keep_body=False):
    if not keep_body:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    with contextlib.suppress(FileNotFoundError):
        part.with_name(part.name + ".json").unlink()


def _read_partial(part, url):
    """The resumable bytes of `part` and their validator, or (0, None) (and it is dropped)."""
    meta_path = part.with_name(part.name + ".json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        have = part.stat().st_size
    except (OSError, ValueError):
        meta, have = None, 0
    if (
        not isinstance(meta, dict)
        or meta.get("url") != url
        or not isinstance(meta.get("validator"), str)
        or not have
    ):
        _drop_partial(part)
        return 0, None
    return have, meta


def _validator(headers):
    """What `If-Range` may carry for this response: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _open(url, target, have, meta):
    request = urllib.request.Request(url, headers={"User-Agent": "keras_elmo"})
    if have:
        request.add_header("Range", f"bytes={have}-")
        request.add_header("If-Range", meta["validator"])
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            return None  # the partial file is complete or stale: start again
        raise DownloadError(
            f"could not download {url}: HTTP {err.code} {err.reason} (cache: {target})."
        ) from None
    except (OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"could not download {url} ({reason}) and it is not in the cache ({target}). "
            f"Connect once to download it, or copy the file to that path."
        ) from None


def _receive(url, target, part, size, pinned, progress, cap, deadline, restarted=False):
    """Write (the rest of) `url` into `part`; returns the expected total size or None."""
    have, meta = _read_partial(part, url)
    if size is not None and have > size:
        _drop_partial(part)
        have, meta = 0, None
    response = _open(url, target, have, meta)
    if response is None or (response.status == 200 and have):
        # 416, or the If-Range validator no longer matches: the whole file again.
        _drop_partial(part)
        if response is None:
            return _receive(url, target, part, size, pinned, progress, cap, deadline, True)
        have = 0
    with response:
        start = _resume_offset(response, have, meta, url)
        if start is None:  # a 206 of another version (a server ignoring If-Range)
            _drop_partial(part)
            if restarted:
                raise DownloadError(f"{url}: the server keeps answering with another version.")
            response.close()
            return _receive(url, target, part, size, pinned, progress, cap, deadline, True)
        total = _announced_total(response, start, url)
        if total is None and size is None and pinned is None:
            raise DownloadError(
                f"{url} sent no Content-Length and keras_elmo knows neither its size nor its "
                "digest: a body cut short could not be told from a whole one, so it is "
                f"refused (cache: {target})."
            )
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"{url} is {total} bytes, not the expected {size} (cache: {target}); "
                f"the file on the server has changed."
            )
        expected = size if size is not None else total
        if expected is not None and expected > cap:
            raise DownloadError(
                f"{url} is {expected} bytes, over the limit of {cap} bytes for one download "
                f"(keras_elmo.checkpoints.download.MAX_DOWNLOAD_BYTES); refused."
            )
        seconds = deadline if deadline is not None else default_deadline(expected or cap)
        validator = _validator(response.headers)
        if not start:
            meta = {"url": url, "validator": validator, "total": expected}
            if validator:
                _write_record_file(part.with_name(part.name + ".json"), meta)
        _copy_body(response, part, start, expected, cap, seconds, url, target, progress)
    return expected


def _write_record_file(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def _announced_total(response, start, url):
    length = response.headers.get("Content-Length")
    if length is None:
        return None
    if not _DIGITS.fullmatch(length.strip()):
        raise DownloadError(
            f"{url} sent a Content-Length of {length[:40]!r}, not a number of bytes; refused."
        )
    return start + int(length)


def _copy_body(response, part, start, expected, cap, seconds, url, target, progress):
    began = time.monotonic()
    resumable = part.with_name(part.name + ".json").exists()
    with (
        open(part, "r+b" if start else "wb") as f,
        _progress_bar(expected, start, target.name, progress) as bar,
    ):
        f.seek(start)
        f.truncate()
        try:
            while True:
                # read1: returns what one receive brought, so the deadline is
                # checked while a server trickles.
                block = response.read1(CHUNK_BYTES)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
                if f.tell() > cap:
                    raise _Refused(
                        f"{url} sent over {cap} bytes, over the limit of {cap} bytes for one "
                        "download (keras_elmo.checkpoints.download.MAX_DOWNLOAD_BYTES); refused."
                    )
                if expected is not None and f.tell() > expected:
                    raise _Refused(f"{url} sent more than the expected {expected} bytes; refused.")
                if time.monotonic() - began > seconds:
                    raise _Interrupted(
                        f"download of {url} did not finish within its deadline of {seconds:g} s "
                        f"({f.tell()} bytes after {time.monotonic() - began:.1f} s)"
                    )
        except _Refused as err:
            f.close()
            _drop_partial(part)
            raise DownloadError(f"{err} (cache: {target})") from None
        except (OSError, http.client.HTTPException, _Interrupted) as err:
            # Connection reset, timeout or deadline mid-file: keep what arrived.
            f.flush()
            if not resumable:
                f.close()
                _drop_partial(part)
                raise DownloadError(
                    f"download of {url} was interrupted after {f.tell()} bytes ({err}); the "
                    "server gave no validator to resume with, so the next attempt starts over."
                ) from None
            raise DownloadError(
                f"download of {url} was interrupted after {f.tell()} bytes ({err}); the "
                f"partial file {part} is kept and the next attempt resumes from it."
            ) from None
        f.flush()
        os.fsync(f.fileno())


class _Refused(Exception):
    pass


class _Interrupted(Exception):
    pass


def _resume_offset(response, have, meta, url):
    """Where the body starts in the file: `have` for a 206 continuing it, 0 for a 200.

    None for a 206 of another version of the file (its validator differs
    from the one recorded when the partial file was started).
    """
    if response.status == 206 and not have:
        raise DownloadError(
            f"{url} answered a request without a Range header with 206 Partial Content; "
            "refused (nothing was cached)."
        )
    if not have or response.status != 206:
        return 0
    if _validator(response.headers) not in (None, meta["validator"]):
        return None
    content_range = response.headers.get("Content-Range", "")
    # "bytes START-END/TOTAL"
    try:
        first = int(content_range.split()[1].split("-")[0])
        total = content_range.split("/")[1]
    except (IndexError, ValueError):
        first, total = -1, None
    if first != have:
        raise DownloadError(
            f"{url}: the server answered the resume request with range "
            f"{content_range!r}, not from byte {have}."
        )
    if meta.get("total") is not None and total not in (str(meta["total"]), "*"):
        return None
    return have


def _progress_bar(total, initial, name, enabled):
    return progress_bar(
        total,
        name,
        unit="B",
        enabled=enabled,
        initial=initial,
        unit_scale=True,
        unit_divisor=1024,
    )


def _unzip(archive, destination, url, limit):
    """Unpack `archive` into `destination`: members inside it, their sizes summed under `limit`."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise DownloadError(
                    f"{url}: the archive has {len(members)} members, over the limit of "
                    f"{MAX_ARCHIVE_MEMBERS}; refused."
                )
            declared = sum(member.file_size for member in members)
            if declared > limit:
                raise DownloadError(
                    f"{url}: the archive unpacks to {declared} bytes, over the limit of "
                    f"{limit} for a {archive.stat().st_size}-byte archive "
                    "(keras_elmo.checkpoints.download.unpack_limit); refused."
                )
            root = destination.resolve()
            for member in members:
                # Refuse members that would land outside the directory.
                path = (destination / member.filename).resolve()
                if path != root and root not in path.parents:
                    raise DownloadError(
                        f"{url}: archive member {member.filename!r} points outside the directory."
                    )
            written = 0
            for member in members:
                path = (destination / member.filename).resolve()
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(path, "wb") as dst:
                    for block in iter(lambda: src.read(CHUNK_BYTES), b""):
                        written += len(block)
                        if written > limit:
                            raise DownloadError(
                                f"{url}: the archive unpacks to more than its declared sizes, "
                                f"over the limit of {limit} bytes; refused."
                            )
                        dst.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise DownloadError(
            f"{url}: not a valid zip archive ({err}); the download was removed."
        ) from None


@contextlib.contextmanager
def _exclusive(lock_path):
    """Hold an exclusive lock on `lock_path` (POSIX) so two processes never write one file.

    The lock file exists only while it is held: it is removed before the
    lock is released, so a download (failed or not) leaves no `.lock`
    behind. A process that waited on a lock file its holder has removed
    meanwhile holds a lock nobody else sees: it checks that the path still
    names the file it locked, and otherwise tries again with the new one.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the rename keeps files whole.
        yield
        return
    while True:
        lock = open(lock_path, "a+b")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                current = os.stat(lock_path)
            except FileNotFoundError:
                current = None
        except BaseException:
            lock.close()
            raise
        if current is not None and os.path.samestat(current, os.fstat(lock.fileno())):
            break
        lock.close()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        lock.close()  # releases the lock
