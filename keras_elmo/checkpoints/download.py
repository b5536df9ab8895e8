"""Fetch model files over HTTP(S) into a local cache, safely.

A file is downloaded once into the cache and read from there afterwards,
without touching the network (so everything works offline once cached).

Nothing half-written ever appears under a final name: bytes go to
`NAME.part` beside the target and the file is renamed into place only after
its size (and SHA-256, where known) checked out. An interrupted download
leaves its `.part` file, and the next attempt asks the server for the rest
with an HTTP Range request (a server that ignores Range sends the whole file
again, which is also handled). Archives are unpacked into a temporary
directory beside the target directory, which is then renamed into place.

This module imports neither TensorFlow nor Keras: the command line resolves
models before it loads TensorFlow.
"""

import contextlib
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from keras_elmo.errors import ElmoError
from keras_elmo.progress import progress_bar

CACHE_ENV = "KERAS_ELMO_CACHE"
OFFLINE_ENV = "KERAS_ELMO_OFFLINE"
# Seconds without a byte from the server before a download is given up.
TIMEOUT = 60
CHUNK_BYTES = 1 << 20


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
    name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "urls" / digest / name


def cached_url(url, *, size=None, sha256=None, progress=False, offline=None):
    """The local path of `url`, downloading it into the cache on first use."""
    return fetch(
        url, url_cache_path(url), size=size, sha256=sha256, progress=progress, offline=offline
    )


def fetch(url, target, *, size=None, sha256=None, progress=False, offline=None):
    """Download `url` to `target` unless it is already there; returns the Path.

    Args:
        url: http(s) address.
        target: the final path (its directory is created).
        size: the expected size in bytes, if known (otherwise the server's
            Content-Length is checked).
        sha256: the expected hex digest, if known.
        progress: show a tqdm progress bar on stderr (`keras_elmo.progress`);
            off by default, as in every library call (the command line turns
            it on unless `--quiet`).
        offline: never use the network (default: $KERAS_ELMO_OFFLINE).
    """
    target = Path(target)
    if target.is_file():
        if size is None or target.stat().st_size == size:
            return target
        # Only this module writes here, after the checks; a file of another
        # size is from an older table or was damaged: fetch it again.
        target.unlink()
    if offline is None:
        offline = offline_requested()
    if offline:
        raise DownloadError(
            f"{url} is not in the cache ({target}) and downloads are off "
            f"({OFFLINE_ENV} is set). Download it once while online, or copy the file there."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with _exclusive(target.with_name(target.name + ".lock")):
        # Another process may have finished the same download while we waited.
        if target.is_file():
            return target
        expected = _download(url, target, part, size, progress)
        got = part.stat().st_size
        if expected is not None and got < expected:
            raise DownloadError(
                f"download of {url} stopped after {got} of {expected} bytes; the partial "
                f"file {part} is kept and the next attempt resumes from it."
            )
        if expected is not None and got > expected:
            part.unlink()
            raise DownloadError(
                f"{url} sent {got} bytes, more than the expected {expected}; the file was "
                f"removed (cache: {target})."
            )
        if sha256 is not None:
            digest = file_sha256(part)
            if digest != sha256.lower():
                part.unlink()
                raise DownloadError(
                    f"{url}: SHA-256 {digest} does not match the expected {sha256}; the "
                    f"download was removed (cache: {target})."
                )
        os.replace(part, target)
    return target


def fetch_archive(url, target_dir, *, size=None, sha256=None, progress=False, offline=None):
    """Download the zip archive at `url` and unpack it as directory `target_dir`.

    The archive itself is removed once unpacked: the directory is what is
    cached, and it appears under its final name only when complete.
    """
    target_dir = Path(target_dir)
    if target_dir.is_dir():
        return target_dir
    archive_name = os.path.basename(urllib.parse.urlparse(url).path) or "archive.zip"
    archive = fetch(
        url,
        target_dir.with_name(f"{target_dir.name}.{archive_name}"),
        size=size,
        sha256=sha256,
        progress=progress,
        offline=offline,
    )
    with _exclusive(target_dir.with_name(target_dir.name + ".lock")):
        if target_dir.is_dir():
            return target_dir
        staging = Path(tempfile.mkdtemp(prefix=target_dir.name + ".", dir=target_dir.parent))
        try:
            _unzip(archive, staging, url)
            os.replace(staging, target_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    archive.unlink()
    return target_dir


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url, target, part, size, progress):
    """Write (the rest of) `url` into `part`; returns the expected total size or None."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "keras_elmo"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            # Range past the end: the partial file is complete or stale;
            # start again from the beginning.
            part.unlink()
            return _download(url, target, part, size, progress)
        raise DownloadError(
            f"could not download {url}: HTTP {err.code} {err.reason} (cache: {target})."
        ) from None
    except (OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"could not download {url} ({reason}) and it is not in the cache ({target}). "
            f"Connect once to download it, or copy the file to that path."
        ) from None
    with response:
        start = _resume_offset(response, have)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"{url} is {total} bytes, not the expected {size} (cache: {target}); "
                f"the file on the server has changed."
            )
        expected = size if size is not None else total
        with (
            open(part, "r+b" if start else "wb") as f,
            _progress_bar(expected, start, target.name, progress) as bar,
        ):
            f.seek(start)
            f.truncate()
            try:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                # Connection reset or timeout mid-file: keep what arrived.
                f.flush()
                raise DownloadError(
                    f"download of {url} was interrupted after {f.tell()} bytes ({err}); the "
                    f"partial file {part} is kept and the next attempt resumes from it."
                ) from None
            f.flush()
            os.fsync(f.fileno())
    return expected


def _resume_offset(response, have):
    """Where the response body starts in the file: `have` for a 206 that continues it, else 0."""
    if not have or response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    # "bytes START-END/TOTAL"
    try:
        first = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        first = -1
    if first != have:
        raise DownloadError(
            f"{response.url}: the server answered the resume request with range "
            f"{content_range!r}, not from byte {have}."
        )
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


def _unzip(archive, destination, url):
    try:
        with zipfile.ZipFile(archive) as zf:
            root = destination.resolve()
            for member in zf.namelist():
                # Refuse members that would land outside the directory.
                path = (destination / member).resolve()
                if path != root and root not in path.parents:
                    raise DownloadError(
                        f"{url}: archive member {member!r} points outside the directory."
                    )
            zf.extractall(destination)
    except zipfile.BadZipFile as err:
        archive.unlink()
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
