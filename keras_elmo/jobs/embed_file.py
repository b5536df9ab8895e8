"""`keras-elmo embed`: a file of sentences -> an hdf5 file of ELMo vectors.

The output has one dataset per input line, named by its 0-based index:
(n_layers + 1, T, 2P) for "all" (layer 0 is the token vector duplicated),
(T, 2P) for "top" and "average"; plus `sentence_to_index`, a JSON string,
and the root attribute `complete` (True: every line is in the file).

Lines are read by `jobs.reader`. Memory does not grow with the file: lines
are read in chunks, each chunk is sorted by length so batches carry little
padding. Nor with the longest line: a model call holds at most `batch_size`
lines and `batch_tokens` token positions (`jobs.batching`), so a long line
runs alone. With
`stateful=True` batches are `batch_size` consecutive lines in file order
instead, so the LSTM state carries over from one batch row to the same row of
the next batch, like the original code.

The output is never one of the inputs (same path, link or hard link). The
work goes to OUTPUT.partial/ (`jobs.parts.PartStore`) and the output is
replaced only by the complete file, so a kill loses at most `flush_seconds` of work and
`resume=True` continues it; the whole story is "An interrupted embed job"
in docs/reliability.md. The input is read once before the model loads
(`reader.open_input`: every line checked, a pipe copied) and checked
unchanged just before the output is replaced; one run at a time holds
OUTPUT.partial/ (a lock), created once the model has loaded.
"""

import os

from keras_elmo import limits
from keras_elmo.checkpoints import download
from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError
from keras_elmo.jobs import batching, output, parquet, parts, reader
from keras_elmo.progress import progress_bar

# Default seconds between commits of finished batches (a kill loses at most this).
FLUSH_SECONDS = 30.0


def _batches(path, batch_size, batch_tokens, stateful):
    """Yield lists of (index, tokens): the model calls, in run (and merge) order.

    Stateless: `jobs.batching`'s token budget, at most `batch_tokens` token
    positions (None: no budget) and `batch_size` lines a call, lines sorted
    by length inside chunks of `batch_size * CHUNK_BATCHES` lines. Stateful:
    `batch_size` consecutive lines in file order (row r carries its state to
    row r of the next call), whatever their length.
    """
    sentences = reader.read_sentences(path)
    if stateful:
        batch = []
        for item in sentences:
            batch.append(item)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    yield from batching.iter_token_budget_batches(
        sentences,
        lambda item: len(item[1]),
        batch_tokens,
        window=batch_size * output.CHUNK_BATCHES,
        max_rows=batch_size,
    )


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
    target = parts.output_target(output_file)
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
            replaceable = (
                os.path.getsize(target) == 0 or _is_hdf5(target) or parquet.is_parquet(target)
            )
        except OSError as err:
            raise InputError(f"output {output_file}: cannot read it ({err.strerror}).") from None
        if not replaceable:
            # An earlier output is replaced by the new one; anything else is
            # more likely a slip of the command line than a file to lose.
            raise InputError(
                f"output {output_file} exists and is not an HDF5 or Parquet file; refusing to "
                "replace "
                "it (delete it or give another output path)."
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output {output_file}: the folder {folder} is not writable.")
    return target


def embed_file(
    input_file,
    output_file,
    options_file=None,
    weight_file=None,
    *,
    # What is computed (layers, batch_size, matmul_dtype: beam.embed_corpus's order).
    layers=output.DEFAULT_LAYERS,
    batch_size=output.BATCH_SIZE,
    batch_tokens=batching.BATCH_TOKENS,
    matmul_dtype="float32",
    stateful=False,
    efml_dir=None,
    source=None,
    # How the job runs.
    file_format="hdf5",
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
    `batch_tokens`: the token budget of a call (`jobs.batching`; None: calls
    of `batch_size` lines whatever their length; not used with `stateful`).
    `file_format`: "hdf5" (the layout above) or "parquet" (one row per line,
    `jobs.parquet`'s schema; the same part store, so `resume` works alike).
    Returns the number of sentences. A KeyboardInterrupt commits the finished
    batches to OUTPUT.partial/ before it propagates (resume with `resume=True`).
    """
    output.check_layers(layers)
    parquet.check_format(file_format)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}.")
    batching.check_positive("batch tokens", batch_tokens, allow_none=True)
    if stateful:  # one row of carried state per batch row, allocated with the layer
        limits.check_state_rows(batch_size, "--stateful batch size")
    if not flush_seconds >= 0:
        raise InputError(f"flush interval must be >= 0 seconds, got {flush_seconds!r}.")
    source = ModelSource.of(
        source, options_file=options_file, weight_file=weight_file, efml_dir=efml_dir
    ).check()
    # Everything about the input and output is checked before the model loads.
    reader.check_input_file(input_file)
    check_output_path(output_file, [input_file])
    # Local files (a preset or a URL is downloaded once into the cache).
    source = source.resolve(progress=bool(progress))
    model_files = source.model_files()
    target = check_output_path(output_file, [input_file, *model_files])
    # The input read once: a pipe is copied, a file is checked unchanged at the end.
    with reader.open_input(input_file, os.path.dirname(target)) as text:
        return _run(
            text,
            target,
            source,
            model_files,
            layers=layers,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            matmul_dtype=matmul_dtype,
            stateful=stateful,
            progress=progress,
            resume=resume,
            flush_seconds=flush_seconds,
            file_format=file_format,
        )


def _run(
    text,
    target,
    source,
    model_files,
    *,
    layers,
    batch_size,
    batch_tokens,
    matmul_dtype,
    stateful,
    progress,
    resume,
    flush_seconds,
    file_format,
):
    """The job on an `InputText`, once input, output and model files are checked."""
    input_file = text.path  # the input, or the private copy of a stream
    total = text.sentences
    job = {
        "format": parts.PARTIAL_FORMAT,
        "input_sha256": text.sha256,
        "sentences": total,
        # The model by content (a copy elsewhere is the same model).
        "model_sha256": [download.file_sha256(path) for path in model_files],
        "layers": layers,
        "batch_size": batch_size,
        "batch_tokens": None if stateful else batch_tokens,
        "stateful": bool(stateful),
        "matmul_dtype": matmul_dtype,
    }
    folder = parts.partial_dir(target)
    # A resume that cannot be is refused before the model loads; the store
    # itself (and its lock) is made after, so a failed load leaves nothing.
    parts.check_job(folder, job, resume, stateful)

    from keras_elmo.layers.elmo_layer import ElmoLayer

    settings = {
        "output_mode": "dict",
        "stateful": stateful,
        "max_batch_size": batch_size,
        "state_rows": batch_size,
        "matmul_dtype": matmul_dtype,
    }
    layer = ElmoLayer.from_source(source, **settings)
    run = output.layer_output_fn(layer, layers)
    store = parts.PartStore(folder, job, resume, stateful, notes={"input": text.stamp()})

    def plan():
        return _batches(input_file, batch_size, batch_tokens, stateful)

    bar = progress_bar(
        total, "keras-elmo embed", unit="sentence", enabled=bool(progress), initial=len(store.done)
    )
    try:
        with bar as bar:
            for batch in plan():
                if all(index in store.done for index, _ in batch):
                    continue  # committed by the interrupted run
                arrays = output.embed_batch(run, [tokens for _, tokens in batch], layers)
                store.write_batch(list(zip((index for index, _ in batch), arrays)), flush_seconds)
                bar.update(len(batch))
        store.commit()
    except KeyboardInterrupt:
        # Keep what is finished: the resumed run starts after it.
        try:
            store.commit()
        finally:
            store.close()
        raise
    except BaseException:
        store.abandon()
        raise
    try:
        attrs = {"sentences": total, "layers": layers}
        if file_format == "parquet":
            parquet.merge_parts(
                store, plan(), target, layers, total, check=lambda: reader.check_unchanged(text)
            )
        else:
            store.merge(plan(), target, attrs, check=lambda: reader.check_unchanged(text))
    except BaseException:
        store.close()
        raise
    store.finish()
    return total
