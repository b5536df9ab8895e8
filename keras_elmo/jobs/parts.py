"""OUTPUT.partial/: the crash-safe part store of `keras-elmo embed`.

Finished batches are written to part files, each made durable and renamed
into place whole (`commit_file`), so a kill loses at most the open part;
a resumed run (`PartStore(..., resume=True)`) keeps the committed parts of
the same job and `PartStore.merge` copies every line into the output,
which is renamed over the target only when complete. The whole story is
"An interrupted embed job" in docs/reliability.md.
"""

import json
import os
import re
import time

import h5py

from keras_elmo.errors import InputError

PARTIAL_SUFFIX = ".partial"
# Bumped when the layout of OUTPUT.partial/ changes (resume refuses others).
PARTIAL_FORMAT = 1


def output_target(output_file):
    # Through a symbolic link to the file it names, so the new file replaces
    # that file (not the link) and the same-file check sees the real path.
    return os.path.realpath(os.fspath(output_file))


def partial_dir(output_file):
    """Where an unfinished run keeps its work: OUTPUT.partial/ beside the output."""
    return output_target(output_file) + PARTIAL_SUFFIX


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp_path, final_path):
    """Make a finished file durable, then give it its final name (atomic)."""
    _fsync(tmp_path)
    os.replace(tmp_path, final_path)
    _fsync(os.path.dirname(final_path))


def check_partial_dir(folder, resume, stateful):
    """The job of an interrupted run kept in `folder` (OUTPUT.partial/), if it may go on.

    Refuses a folder that is not a partial run, a stateful run (which cannot
    resume) and a run without `resume`. Cheap: the job itself (same input,
    model, ...) is compared once the input is read. None if there is no folder.
    """
    if not os.path.lexists(folder):
        return None
    try:
        with open(os.path.join(folder, "job.json"), encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    if old is None or not os.path.isdir(folder):
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


class PartStore:
    """OUTPUT.partial/: job.json plus committed parts part-NNNNNN.hdf5.

    A part holds whole batches only (datasets named by line index, as in the
    output) and the attribute `complete`; anything else there (a `.tmp` part
    a kill interrupted, the merge file) is scratch and is removed on resume.
    """

    def __init__(self, folder, job, resume, stateful):
        self.folder = folder
        self.job = job
        self.done = {}  # line index -> part file holding it
        self._tmp = None
        self._handle = None
        self._batch = []  # indices of the batch being written, for an interrupt
        self._next = 0
        self._opened_at = 0.0
        if os.path.lexists(folder):
            self._reopen(resume, stateful)
        else:
            try:
                os.mkdir(folder)
            except OSError as err:
                raise InputError(f"cannot create {folder}: {err.strerror}.") from None
            self._write_job()

    def _write_job(self):
        tmp = os.path.join(self.folder, "job.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.job, f, indent=1)
        commit_file(tmp, os.path.join(self.folder, "job.json"))

    def _reopen(self, resume, stateful):
        folder = self.folder
        old = check_partial_dir(folder, resume, stateful)
        for key, value in self.job.items():
            if old.get(key) != value:
                raise InputError(
                    f"cannot resume from {folder}: it was started with a different {key} "
                    f"({old.get(key)!r}, now {value!r}); delete it to start over."
                )
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
            elif name != "job.json":
                os.remove(path)  # scratch of the interrupted run

    @staticmethod
    def _read_part(path):
        try:
            with h5py.File(path, "r") as f:
                if not f.attrs.get("complete", False):
                    return None
                return [int(name) for name in f]
        except (OSError, ValueError):
            return None

    # Writing: open a part lazily, commit it every flush interval and at the end.
    def write_batch(self, items, flush_seconds):
        """Write [(index, array)] (one whole batch); commit if the interval is up."""
        if self._handle is None:
            self._tmp = os.path.join(self.folder, f"part-{self._next:06d}.hdf5.tmp")
            self._handle = h5py.File(self._tmp, "w")
            self._opened_at = time.monotonic()
        self._batch = [index for index, _ in items]
        for index, data in items:
            self._handle.create_dataset(str(index), data=data)
        self._batch = []
        if time.monotonic() - self._opened_at >= flush_seconds:
            self.commit()

    def commit(self):
        """Close the open part (whole batches only) and give it its final name."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        with handle:
            # An interrupt in the middle of a batch's writes: drop that batch.
            for index in self._batch:
                if str(index) in handle:
                    del handle[str(index)]
            self._batch = []
            indices = [int(name) for name in handle]
            handle.attrs["complete"] = True
        final = os.path.join(self.folder, f"part-{self._next:06d}.hdf5")
        self._next += 1
        commit_file(self._tmp, final)
        for index in indices:
            self.done[index] = final

    def abandon(self):
        """Close an open part without committing it (an error, not an interrupt)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def merge(self, plan, target, attrs):
        """Copy every line's dataset, in plan order, into a new file renamed to `target`."""
        merged = os.path.join(self.folder, "merged.hdf5.tmp")
        sentence_to_index = {}
        source_path, source = None, None
        try:
            with h5py.File(merged, "w") as out:
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
                        sentence_to_index[" ".join(tokens)] = str(index)
                out.create_dataset(
                    "sentence_to_index",
                    data=[json.dumps(sentence_to_index)],
                    dtype=h5py.string_dtype(),
                )
                out.attrs.update(attrs)
                out.attrs["complete"] = True
        finally:
            if source is not None:
                source.close()
        commit_file(merged, target)
