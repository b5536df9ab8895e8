"""OUTPUT.partial/: the crash-safe part store of `keras-elmo embed`.

Finished batches are written to part files, each made durable and renamed
into place whole (`commit_file`), so a kill loses at most the open part;
a resumed run (`PartStore(..., resume=True)`) keeps the committed parts of
the same job and `PartStore.merge` copies every line into the output,
which is renamed over the target only when complete. The whole story is
"An interrupted embed job" in docs/reliability.md.

One run at a time: the store holds an exclusive `flock` on its `lock`
file (with the holder's pid in it) from the moment the folder appears
(it is built under a temporary name, lock taken, then renamed into place)
until the folder is removed; another run is refused with one line naming
that pid. A disk that fills up or fails while a part or the output is
written is an `InputError` naming the file, and leaves the committed parts
for `--resume`.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time

import h5py

from keras_elmo import durable
from keras_elmo.errors import InputError

PARTIAL_SUFFIX = ".partial"
# Bumped when the layout of OUTPUT.partial/ changes (resume refuses others).
PARTIAL_FORMAT = 1
LOCK_NAME = "lock"
# Seconds a run waits for the lock before it calls the folder busy.
LOCK_PATIENCE = 0.5
# What h5py raises when the file underneath cannot be written or read.
_IO_ERRORS = (OSError, RuntimeError)


def output_target(output_file):
    # Through a symbolic link to the file it names, so the new file replaces
    # that file (not the link) and the same-file check sees the real path.
    return os.path.realpath(os.fspath(output_file))


def partial_dir(output_file):
    """Where an unfinished run keeps its work: OUTPUT.partial/ beside the output."""
    return output_target(output_file) + PARTIAL_SUFFIX


def commit_file(tmp_path, final_path):
    """Make a finished file durable, then give it its final name (atomic)."""
    durable.fsync_path(tmp_path)
    os.replace(tmp_path, final_path)
    durable.fsync_path(os.path.dirname(final_path))


class _DiskFile:
    """A new file for h5py's file-object driver whose failed writes are kept, not raised.

    HDF5 that meets a write error (a full disk, EIO) leaves its file half
    closed and reports it again on every object it frees (the job used to
    print dozens of errors, then crash). Written through this, HDF5 never
    sees the error: the first one is kept in `error`, later writes are
    skipped, and the writer checks `error` after each step and gives up
    with one message. The file is created exclusively (umask permissions).
    """

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        self.pos = 0
        self.error = None

    def seek(self, pos, whence=os.SEEK_SET):
        if whence == os.SEEK_SET:
            self.pos = pos
        elif whence == os.SEEK_CUR:
            self.pos += pos
        else:
            self.pos = os.fstat(self.fd).st_size + pos
        return self.pos

    def tell(self):
        return self.pos

    def write(self, data):
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    wrote = os.pwrite(self.fd, view[done:], self.pos + done)
                    if wrote == 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += wrote
            except OSError as err:
                self.error = err
        self.pos += len(view)
        return len(view)

    def readinto(self, buffer):
        data = os.pread(self.fd, len(buffer), self.pos)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def read(self, size=-1):
        if size < 0:
            size = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data

    def truncate(self, size=None):
        if self.error is None:
            try:
                os.ftruncate(self.fd, self.pos if size is None else size)
            except OSError as err:
                self.error = err
        return self.pos if size is None else size

    def flush(self):
        pass

    def check(self):
        """Raise the kept write error, if any."""
        if self.error is not None:
            raise self.error

    def close(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _reason(err):
    """One line for an I/O error (h5py's messages span lines and name buffers)."""
    if getattr(err, "errno", None):
        return os.strerror(err.errno)
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _output_of(folder):
    return folder[: -len(PARTIAL_SUFFIX)] if folder.endswith(PARTIAL_SUFFIX) else folder


def _busy(folder, pid):
    holder = f"pid {pid}" if pid is not None else "pid unknown"
    return InputError(
        f"another keras-elmo embed is writing {_output_of(folder)} ({holder}); "
        f"wait for it to finish (it holds {os.path.join(folder, LOCK_NAME)})."
    )


def _read_pid(fd):
    try:
        return int(os.pread(fd, 64, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return None


def _try_lock(fd, patience=0.0):
    """Take the exclusive lock on `fd`; False if another process holds it for
    `patience` seconds (a run holds it for its whole length; `locked_by` in
    another process's check only for an instant)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        else:
            return True


def _write_pid(fd):
    # Always the same 20 bytes at offset 0: a reader never sees a half-written pid.
    os.pwrite(fd, f"{os.getpid():>19}\n".encode("ascii"), 0)


def locked_by(folder):
    """The pid (or None if unknown) of the run holding `folder`'s lock; False if none holds it."""
    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return False
    try:
        if _try_lock(fd):
            return False
        return _read_pid(fd)
    finally:
        os.close(fd)  # also lets go of the lock if it was taken


def check_partial_dir(folder, resume, stateful):
    """The job of an interrupted run kept in `folder` (OUTPUT.partial/), if it may go on.

    Refuses a folder another run is writing (its lock is held), a folder
    that is not a partial run, a stateful run (which cannot resume) and a
    run without `resume`. Cheap: the job itself (same input, model, ...) is
    compared by `check_job` once the input is read. None if there is no folder.
    """
    if os.path.lexists(folder):
        holder = locked_by(folder)
        if holder is not False:
            raise _busy(folder, holder)
    return _check_folder(folder, resume, stateful)


def _check_folder(folder, resume, stateful):
    if not os.path.lexists(folder):
        return None
    try:
        with open(os.path.join(folder, "job.json"), encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or not os.path.isdir(folder):
        raise InputError(
            f"{folder} exists but is not a keras-elmo partial run; move it away first."
        )
    if stateful:
        raise InputError(
            f"{folder} holds an interrupted run, but a --stateful run cannot resume "
            "(the LSTM state passed between batches is not saved); delete it and rerun."
        )
    if not resume:
        raise InputError(
            f"{folder} holds an interrupted run; pass --resume to continue it, "
            "or delete it to start over."
        )
    return old


def _compare_jobs(folder, old, job):
    for key, value in job.items():
        if old.get(key) == value:
            continue
        if key == "input_sha256":
            was = old.get(key)
            was = f"{was[:12]}..." if isinstance(was, str) else "none recorded"
            raise InputError(
                f"cannot resume from {folder}: the input changed since the interrupted run "
                f"(SHA-256 {was}, now {value[:12]}...); give the same input, or delete it "
                "to start over."
            )
        raise InputError(
            f"cannot resume from {folder}: it was started with a different {key} "
            f"({old.get(key)!r}, now {value!r}); delete it to start over."
        )


def check_job(folder, job, resume, stateful):
    """`check_partial_dir`, then the interrupted run's job.json against `job` (read-only)."""
    old = check_partial_dir(folder, resume, stateful)
    if old is not None:
        _compare_jobs(folder, old, job)


class PartStore:
    """OUTPUT.partial/: job.json, the lock, plus committed parts part-NNNNNN.hdf5.

    A part holds whole batches only (datasets named by line index, as in the
    output) and the attribute `complete`; anything else there (a `.tmp` part
    a kill interrupted, a merge file) is scratch and is removed on resume.
    `notes` go into job.json but are not compared on resume (the input's
    size and modification time, which a copy of the same text changes).
    Call `close` (or `finish`) when done: it lets go of the lock.
    """

    def __init__(self, folder, job, resume, stateful, notes=None):
        self.folder = folder
        self.job = job
        self.notes = dict(notes or {})
        self.done = {}  # line index -> part file holding it
        self._disk = None  # the open part's file
        self._handle = None  # the open part (h5py)
        self._batch = []  # indices of the batch being written, for an interrupt
        self._next = 0
        self._opened_at = 0.0
        self._lock = None
        # A folder that appears or goes away meanwhile (another run starting or
        # finishing) is looked at again; a held lock is refused at once.
        for _ in range(3):
            if os.path.lexists(folder):
                self._lock = self._lock_existing()
                if self._lock is None:
                    continue
                try:
                    self._reopen(resume, stateful)
                except BaseException:
                    self.close()
                    raise
                return
            self._lock = self._create()
            if self._lock is not None:
                return
        raise _busy(folder, None)

    def _lock_existing(self):
        """Lock the existing folder; None if it went away (or was replaced) meanwhile."""
        path = os.path.join(self.folder, LOCK_NAME)
        if not os.path.isfile(os.path.join(self.folder, "job.json")):
            if not os.path.lexists(self.folder):
                return None
            _check_folder(self.folder, True, False)  # refuses what is not a partial run
        try:
            # O_CREAT: a run of a version before the lock left none.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise InputError(f"cannot lock {self.folder}: {_reason(err)}.") from None
        if not _try_lock(fd, patience=LOCK_PATIENCE):
            pid = _read_pid(fd)
            os.close(fd)
            raise _busy(self.folder, pid)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if not same:  # the run that held it removed the folder meanwhile
            os.close(fd)
            return None
        _write_pid(fd)
        return fd

    def _create(self):
        """Build the folder (lock taken, job.json written) under a temporary name and
        rename it into place; None if another run's folder got there first."""
        parent, name = os.path.split(self.folder)
        tmp = os.path.join(parent, f".{name}.new-{secrets.token_hex(8)}")
        try:
            os.mkdir(tmp)  # (not mkdtemp: the folder gets the umask's permissions)
        except OSError as err:
            raise InputError(f"cannot create {self.folder}: {_reason(err)}.") from None
        fd = None
        try:
            fd = os.open(os.path.join(tmp, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
            _try_lock(fd)  # nobody else can see this folder yet
            _write_pid(fd)
            self._write_job(tmp)
            try:
                os.rename(tmp, self.folder)
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
                os.close(fd)
                fd = None
                return None
            durable.fsync_path(parent)
            return fd
        except OSError as err:
            if fd is not None:
                os.close(fd)
            fd = None
            raise InputError(f"cannot create {self.folder}: {_reason(err)}.") from None
        finally:
            if fd is None or os.path.lexists(tmp):
                with contextlib.suppress(OSError):
                    shutil.rmtree(tmp)

    def _write_job(self, folder):
        tmp = os.path.join(folder, "job.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({**self.job, **self.notes}, f, indent=1)
        commit_file(tmp, os.path.join(folder, "job.json"))

    def _reopen(self, resume, stateful):
        folder = self.folder
        old = _check_folder(folder, resume, stateful)
        _compare_jobs(folder, old, self.job)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if re.fullmatch(r"part-\d{6}\.hdf5", name):
                self._next = max(self._next, int(name[5:11]) + 1)
                indices = self._read_part(path)
                if indices is None:
                    os.remove(path)  # unreadable or unfinished: its batches run again
                    continue
                for index in indices:
                    self.done[index] = path
            elif name not in ("job.json", LOCK_NAME):
                _remove(path)  # scratch of the interrupted run
        if self.notes:
            try:
                self._write_job(folder)  # this run's input size and time
            except OSError as err:
                raise InputError(f"cannot write {folder}/job.json: {_reason(err)}.") from None

    @staticmethod
    def _read_part(path):
        try:
            with h5py.File(path, "r") as f:
                if not f.attrs.get("complete", False):
                    return None
                return [int(name) for name in f]
        except (OSError, ValueError):
            return None

    def _write_failed(self, err, path):
        """Close and delete the part being written (`path`); the error to raise."""
        self._drop_open_part()
        with contextlib.suppress(OSError):
            os.remove(path)
        return InputError(
            f"cannot write {path}: {_reason(err)}; the batches committed before it are kept "
            f"in {self.folder}/: make room (or fix the disk) and rerun with --resume."
        )

    def _drop_open_part(self):
        handle, self._handle = self._handle, None
        disk, self._disk = self._disk, None
        if handle is not None:
            with contextlib.suppress(*_IO_ERRORS):
                handle.close()
        if disk is not None:
            disk.close()
            with contextlib.suppress(OSError):
                os.remove(disk.path)
        self._batch = []

    # Writing: open a part lazily, commit it every flush interval and at the end.
    def write_batch(self, items, flush_seconds):
        """Write [(index, array)] (one whole batch); commit if the interval is up."""
        path = os.path.join(self.folder, f"part-{self._next:06d}.hdf5.tmp")
        try:
            if self._handle is None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # (left by a failed commit of this run)
                self._disk = _DiskFile(path)
                self._handle = h5py.File(self._disk, "w")
                self._opened_at = time.monotonic()
            self._batch = [index for index, _ in items]
            for index, data in items:
                self._handle.create_dataset(str(index), data=data)
                self._disk.check()
        except _IO_ERRORS as err:
            raise self._write_failed(err, path) from None
        self._batch = []
        if time.monotonic() - self._opened_at >= flush_seconds:
            self.commit()

    def commit(self):
        """Close the open part (whole batches only) and give it its final name."""
        if self._handle is None:
            return
        disk = self._disk
        final = os.path.join(self.folder, f"part-{self._next:06d}.hdf5")
        try:
            # An interrupt in the middle of a batch's writes: drop that batch.
            for index in self._batch:
                if str(index) in self._handle:
                    del self._handle[str(index)]
            self._batch = []
            indices = [int(name) for name in self._handle]
            self._handle.attrs["complete"] = True
            handle, self._handle = self._handle, None
            handle.close()
            disk.check()
            os.fsync(disk.fd)
            disk.close()
            self._disk = None
            commit_file(disk.path, final)
        except _IO_ERRORS as err:
            raise self._write_failed(err, disk.path) from None
        self._next += 1
        for index in indices:
            self.done[index] = final

    def abandon(self):
        """Drop an open part without committing it (an error, not an interrupt); let go."""
        self._drop_open_part()
        self.close()

    def close(self):
        """Let go of the lock (the folder stays for --resume)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def finish(self):
        """Remove the folder (the output is complete), then let go of the lock.

        It is renamed away first, so no other run can find it half-deleted."""
        gone = f"{self.folder}.done-{secrets.token_hex(4)}"
        try:
            os.rename(self.folder, gone)
        except OSError:
            gone = self.folder
        with contextlib.suppress(OSError):
            shutil.rmtree(gone)
        self.close()

    def merge(self, plan, target, attrs, check=None):
        """Copy every line's dataset, in plan order, into a new file renamed to `target`.

        The new file has a name of its own in the folder and is checked to be
        that file before the rename; `check()` (if given) runs just before the
        rename and may refuse it (the input changed). Every line of the job
        must be there once.
        """
        # A name of its own, created exclusively.
        merged = os.path.join(self.folder, f"merged-{secrets.token_hex(8)}.hdf5.tmp")
        disk = None
        try:
            disk = _DiskFile(merged)
            own = os.fstat(disk.fd)
            self._merge_into(disk, plan, attrs)
            os.fsync(disk.fd)
            disk.close()
            now = os.stat(merged)
            if (now.st_dev, now.st_ino) != (own.st_dev, own.st_ino):
                raise InputError(f"{merged} was replaced during the merge; rerun with --resume.")
            if check is not None:
                check()
            commit_file(merged, target)
        except _IO_ERRORS as err:
            raise self._merge_failed(err, target) from None
        finally:
            if disk is not None:
                disk.close()
            with contextlib.suppress(OSError):
                os.remove(merged)

    def _merge_failed(self, err, target):
        return InputError(
            f"cannot write {target} (merging {self.folder}/): {_reason(err)}; every "
            f"finished batch is kept in {self.folder}/: make room (or fix the disk) and "
            "rerun with --resume."
        )

    def _merge_into(self, disk, plan, attrs):
        sentence_to_index = {}
        source_path, source = None, None
        lines = 0
        try:
            with h5py.File(disk, "w") as out:
                for batch in plan:
                    for index, tokens in batch:
                        path = self.done.get(index)
                        if path is None:
                            raise InputError(
                                f"line {index + 1} is missing from {self.folder}; "
                                "did the input change during the run?"
                            )
                        if path != source_path:
                            if source is not None:
                                source.close()
                            source_path, source = path, h5py.File(path, "r")
                        out.create_dataset(str(index), data=source[str(index)][...])
                        disk.check()
                        sentence_to_index[" ".join(tokens)] = str(index)
                        lines += 1
                if lines != self.job.get("sentences", lines):
                    raise InputError(
                        f"the input has {lines} lines now, {self.job['sentences']} when the "
                        "run started; did the input change during the run?"
                    )
                out.create_dataset(
                    "sentence_to_index",
                    data=[json.dumps(sentence_to_index)],
                    dtype=h5py.string_dtype(),
                )
                out.attrs.update(attrs)
                out.attrs["complete"] = True
            disk.check()
        finally:
            if source is not None:
                source.close()


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
