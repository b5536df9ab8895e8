"""`keras-elmo embed`: a file of sentences -> an hdf5 file of ELMo vectors.

The output has one dataset per input line, named by its 0-based index:
(n_layers + 1, T, 2P) for "all" (layer 0 is the token vector duplicated),
(T, 2P) for "top" and "average"; plus `sentence_to_index`, a JSON string,
and the root attribute `complete` (True: every line is in the file).

Lines end with \\n, \\r\\n or \\r; a UTF-8 byte-order mark at the start of the
file is dropped. Memory does not grow with the file: lines are read in
chunks, each chunk is sorted by length so batches carry little padding. With
`stateful=True` batches are consecutive lines in file order instead, so the
LSTM state carries over from one batch row to the same row of the next batch,
like the original code.

The output is never one of the inputs (same path, link or hard link). The
work goes to OUTPUT.partial/ (`_Parts`) and the output is replaced only by
the complete file, so a kill loses at most `flush_seconds` of work and
`resume=True` continues it; the whole story is "An interrupted embed job"
in docs/reliability.md.
"""

import contextlib
import json
import os
import re
import shutil
import time

import h5py
import numpy as np

from keras_elmo.checkpoints import download
from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.progress import progress_bar
from keras_elmo.text import characters

LAYER_CHOICES = ("all", "top", "average")
DEFAULT_LAYERS = "all"
# Sentences per model call.
BATCH_SIZE = 64
# The shard formats of `keras-elmo beam-embed` (keras_elmo.integrations.beam;
# here, so that the command line reads them without importing Beam).
BEAM_FORMATS = ("hdf5", "tfrecord")
# Lines per sorted chunk, in batches; bounds memory and keeps batches dense.
CHUNK_BATCHES = 32
# Default seconds between commits of finished batches (a kill loses at most this).
FLUSH_SECONDS = 30.0
# A line longer than this is not a sentence (and would need gigabytes in the
# model); it also bounds what the reader holds in memory.
MAX_LINE_BYTES = 1 << 20
PARTIAL_SUFFIX = ".partial"
# Bumped when the layout of OUTPUT.partial/ changes (resume refuses others).
PARTIAL_FORMAT = 1

_BOM = b"\xef\xbb\xbf"
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_READ_BLOCK = 1 << 16


def iter_lines(stream, where="input", block_size=_READ_BLOCK):
    """Yield the raw lines (bytes, no terminator) of a binary stream.

    A line ends at \\n, \\r\\n or \\r (old Mac files), the last one possibly at
    the end of the stream; a UTF-8 byte-order mark at the very start is
    dropped. A line over MAX_LINE_BYTES is an InputError naming `where`.
    """

    def blocks():
        # The BOM is decided first: a tiny block size may split it.
        head = b""
        while len(head) < len(_BOM):
            block = stream.read(block_size)
            if not block:
                break
            head += block
        yield head[len(_BOM) :] if head.startswith(_BOM) else head
        yield from iter(lambda: stream.read(block_size), b"")

    def checked(line):
        nonlocal number
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise InputError(f"{where}: line {number} is over {MAX_LINE_BYTES} bytes.")
        return line

    pending = b""
    number = 0
    for block in blocks():
        data = pending + block
        # A final \r may be half of a \r\n split across blocks: keep it back.
        cut = len(data) - 1 if data.endswith(b"\r") else len(data)
        lines = _NEWLINE.split(data[:cut])
        pending = lines.pop() + data[cut:]
        for line in lines:
            yield checked(line)
        if len(pending) > MAX_LINE_BYTES + 1:  # + a held-back \r
            checked(pending)
    if pending:
        lines = _NEWLINE.split(pending)
        if lines[-1] == b"":
            lines.pop()  # the file ended with a line terminator
        for line in lines:
            yield checked(line)


def read_sentences(path):
    """Yield (index, tokens) for each line; clear errors for bad lines."""
    with open(path, "rb") as f:
        yield from sentences_from_stream(f, str(path))


def sentences_from_stream(stream, where):
    """`read_sentences` on an open binary stream; `where` names it in errors."""
    for index, raw in enumerate(iter_lines(stream, where=where)):
        line = characters.decode_utf8(raw, f"{where}: line {index + 1}")
        tokens = line.split()
        if not tokens:
            raise InputError(
                f"{where}: line {index + 1} is empty; every line must hold a sentence."
            )
        yield index, tokens


def _check_input(path):
    """First pass: validate every line and count them (streaming)."""
    count = sum(1 for _ in read_sentences(path))
    if count == 0:
        raise InputError(f"{path}: the input file has no sentences.")
    return count


def _batches(path, batch_size, sort):
    """Yield lists of (index, tokens); length-sorted within chunks unless `sort` is False."""
    chunk = []
    limit = batch_size * (CHUNK_BATCHES if sort else 1)
    for item in read_sentences(path):
        chunk.append(item)
        if len(chunk) == limit:
            yield from _split(chunk, batch_size, sort)
            chunk = []
    if chunk:
        yield from _split(chunk, batch_size, sort)


def _split(chunk, batch_size, sort):
    if sort:
        chunk = sorted(chunk, key=lambda item: len(item[1]))
    for start in range(0, len(chunk), batch_size):
        yield chunk[start : start + batch_size]


def _token_array(batch):
    longest = max(len(tokens) for _, tokens in batch)
    out = np.full((len(batch), longest), b"", dtype=object)
    for row, (_, tokens) in enumerate(batch):
        out[row, : len(tokens)] = [t.encode("utf-8") for t in tokens]
    return out


def layer_output_fn(layer, layers):
    """A compiled `tokens (B, T) string -> vectors` for a dict-output `ElmoLayer`.

    The vectors are (B, n_layers + 1, T, 2P) for "all", (B, T, 2P) for "top"
    and "average"; `keras-elmo beam-embed` computes with the same function.
    """
    import tensorflow as tf

    from keras_elmo.layers.elmo_layer import embed_all_layers

    n_lstm = layer.n_lstm_layers

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string)])
    def run(tokens):
        out = layer(tokens)
        if layers == "top":
            return out[f"lstm_outputs{n_lstm}"]
        stack = embed_all_layers(out, n_lstm)
        return stack if layers == "all" else tf.reduce_mean(stack, axis=1)

    return run


# ------------------------------------------------------------ output paths


def partial_dir(output_file):
    """Where an unfinished run keeps its work: OUTPUT.partial/ beside the output."""
    return _target(output_file) + PARTIAL_SUFFIX


def _target(output_file):
    # Through a symbolic link to the file it names, so the new file replaces
    # that file (not the link) and the same-file check sees the real path.
    return os.path.realpath(os.fspath(output_file))


def check_input_file(input_file):
    """Refuse an input that is missing, a folder or unreadable (cheap: opens it only)."""
    if not os.path.exists(input_file):
        raise MissingFileError(f"input file not found: {input_file}")
    if os.path.isdir(input_file):
        raise InputError(f"input {input_file} is a directory; give a text file.")
    try:
        with open(input_file, "rb"):
            pass
    except OSError as err:
        raise InputError(f"cannot read input {input_file}: {err.strerror}.") from None


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path):
    """Whether `path` starts an HDF5 file: the signature at byte 0, 512, 1024, 2048, ..."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def check_output_path(output_file, inputs):
    """Refuse an output that is a folder, is one of `inputs`, is an existing file
    other than an HDF5 file (an empty file is fine), or cannot be created.

    Cheap and before any model loads. Returns the real path to write.
    """
    target = _target(output_file)
    if os.path.isdir(target):
        raise InputError(f"output {output_file} is a directory; give a file path.")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise InputError(f"output {output_file}: the folder {folder} does not exist.")
    if os.path.exists(target):
        if not os.path.isfile(target):
            # The finished file is renamed over the target: never over a device.
            raise InputError(f"output {output_file} exists and is not a regular file.")
        for path in inputs:
            if os.path.exists(path) and os.path.samefile(path, target):
                raise InputError(
                    f"output {output_file} is the input file {path}; "
                    "refusing to write over an input."
                )
        try:
            replaceable = os.path.getsize(target) == 0 or _is_hdf5(target)
        except OSError as err:
            raise InputError(f"output {output_file}: cannot read it ({err.strerror}).") from None
        if not replaceable:
            # An earlier output is replaced by the new one; anything else is
            # more likely a slip of the command line than a file to lose.
            raise InputError(
                f"output {output_file} exists and is not an HDF5 file; refusing to replace "
                "it (delete it or give another output path)."
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output {output_file}: the folder {folder} is not writable.")
    return target


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp_path, final_path):
    """Make a finished file durable, then give it its final name (atomic)."""
    _fsync(tmp_path)
    os.replace(tmp_path, final_path)
    _fsync(os.path.dirname(final_path))


# ------------------------------------------------------------ the partial folder


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


class _Parts:
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
        _commit(tmp, os.path.join(self.folder, "job.json"))

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
        _commit(self._tmp, final)
        for index in indices:
            self.done[index] = final

    def abandon(self):
        """Close an open part without committing it (an error, not an interrupt)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _merge(parts, plan, target, attrs):
    """Copy every line's dataset, in plan order, into a new file renamed to `target`."""
    merged = os.path.join(parts.folder, "merged.hdf5.tmp")
    sentence_to_index = {}
    source_path, source = None, None
    try:
        with h5py.File(merged, "w") as out:
            for batch in plan:
                for index, tokens in batch:
                    path = parts.done.get(index)
                    if path is None:
                        raise InputError(
                            f"line {index + 1} is missing from {parts.folder}; "
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
    _commit(merged, target)


# ------------------------------------------------------------ the job


def embed_file(
    input_file,
    output_file,
    options_file=None,
    weight_file=None,
    *,
    # What is computed (layers, batch_size, matmul_dtype: beam.embed_corpus's order).
    layers=DEFAULT_LAYERS,
    batch_size=BATCH_SIZE,
    matmul_dtype="float32",
    stateful=False,
    efml_dir=None,
    source=None,
    # How the job runs.
    progress=False,
    resume=False,
    flush_seconds=FLUSH_SECONDS,
):
    """Embed every line of `input_file` into `output_file`; see the module docstring.

    `progress`: show a progress bar (sentences done, rate, time left) on
    stderr, and one for the download when the files are URLs (default off;
    `keras-elmo embed` shows it unless `--quiet`).
    The model: `options_file` + `weight_file` (local files or URLs), or
    `efml_dir` (an ELMoForManyLangs model directory), or `source` (a
    `keras_elmo.checkpoints.model_source.ModelSource`, or a preset name or
    model directory); exactly one of them.
    `matmul_dtype`: `ElmoLayer`'s lower-precision option ("Lower precision"
    in docs/performance.md).
    Returns the number of sentences. A KeyboardInterrupt commits the finished
    batches to OUTPUT.partial/ before it propagates (resume with `resume=True`).
    """
    if layers not in LAYER_CHOICES:
        raise InputError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}.")
    if not flush_seconds >= 0:
        raise InputError(f"flush interval must be >= 0 seconds, got {flush_seconds!r}.")
    source = ModelSource.of(
        source, options_file=options_file, weight_file=weight_file, efml_dir=efml_dir
    ).check()
    # Everything about the input and output is checked before the model loads.
    check_input_file(input_file)
    check_output_path(output_file, [input_file])
    # Local files (a preset or a URL is downloaded once into the cache).
    source = source.resolve(progress=bool(progress))
    model_files = source.model_files()
    target = check_output_path(output_file, [input_file, *model_files])
    total = _check_input(input_file)
    job = {
        "format": PARTIAL_FORMAT,
        "input_sha256": download.file_sha256(input_file),
        "sentences": total,
        # The model by content (a copy elsewhere is the same model).
        "model_sha256": [download.file_sha256(path) for path in model_files],
        "layers": layers,
        "batch_size": batch_size,
        "stateful": bool(stateful),
        "matmul_dtype": matmul_dtype,
    }
    parts = _Parts(partial_dir(output_file), job, resume, stateful)

    import tensorflow as tf

    from keras_elmo.layers.elmo_layer import ElmoLayer

    settings = {
        "output_mode": "dict",
        "stateful": stateful,
        "max_batch_size": batch_size,
        "matmul_dtype": matmul_dtype,
    }
    layer = ElmoLayer.from_source(source, **settings)
    run = layer_output_fn(layer, layers)

    def plan():
        return _batches(input_file, batch_size, sort=not stateful)

    bar = progress_bar(
        total, "keras-elmo embed", unit="sentence", enabled=bool(progress), initial=len(parts.done)
    )
    try:
        with bar as bar:
            for batch in plan():
                if all(index in parts.done for index, _ in batch):
                    continue  # committed by the interrupted run
                vectors = run(tf.constant(_token_array(batch))).numpy()
                items = []
                for row, (index, tokens) in enumerate(batch):
                    n = len(tokens)
                    data = vectors[row, :, :n] if layers == "all" else vectors[row, :n]
                    items.append((index, data))
                parts.write_batch(items, flush_seconds)
                bar.update(len(batch))
        parts.commit()
    except KeyboardInterrupt:
        # Keep what is finished: the resumed run starts after it.
        parts.commit()
        raise
    except BaseException:
        parts.abandon()
        raise
    _merge(parts, plan(), target, {"sentences": total, "layers": layers})
    with contextlib.suppress(OSError):
        shutil.rmtree(parts.folder)
    return total
