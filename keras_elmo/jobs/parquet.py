"""Parquet output of the embed jobs (`--format parquet`): one row per sentence.

The schema (docs/formats.md, "Parquet output"), for P the projection size:

- `index`: int64, the sentence's 0-based line index (`keras-elmo embed`);
- `tokens`: list<string>, the sentence's tokens;
- `vectors`: float32 lists in the shape the HDF5 output has for that line:
  list<list<float>> (T, 2P) for "top" and "average",
  list<list<list<float>>> (n_layers + 1, T, 2P) for "all" (the layer axis
  first, as in the HDF5 datasets).

Plain (variable-size) lists: every reader (pandas, pyarrow, Spark, DuckDB)
reads them as nested arrays. The file's key-value metadata holds
`keras_elmo.layers`, `keras_elmo.sentences` and `keras_elmo.dim` (2P).

`embed_file` keeps its crash-safe HDF5 part store (`jobs.parts`) for
`--format parquet` too: only the final merge differs, written to a
temporary name, made durable and renamed over the target
(`parts.commit_file`), so a resumed run works as for HDF5 and a killed run
never leaves a partial Parquet file at the output path.

Needs pyarrow (the `[spark]` and `[beam]` extras bring it); imported only
when used.
"""

import contextlib
import os
import secrets

import numpy as np

from keras_elmo.errors import InputError

FORMATS = ("hdf5", "parquet")
PARQUET_MAGIC = b"PAR1"
# Rows per Parquet row group (a reader's unit of work).
ROW_GROUP_ROWS = 256
METADATA_PREFIX = "keras_elmo."


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the installation
        raise InputError(
            "Parquet output needs pyarrow: pip install -e '.[spark]' in the keras_elmo checkout."
        ) from None
    return pa, pq


def check_format(file_format):
    if file_format not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {file_format!r}.")
    if file_format == "parquet":
        _pyarrow()
    return file_format


def is_parquet(path):
    """Whether `path` starts and ends with the Parquet magic (a whole Parquet file)."""
    size = os.path.getsize(path)
    if size < 2 * len(PARQUET_MAGIC):
        return False
    with open(path, "rb") as f:
        head = f.read(len(PARQUET_MAGIC))
        f.seek(size - len(PARQUET_MAGIC))
        return head == PARQUET_MAGIC and f.read() == PARQUET_MAGIC


def vectors_type(layers):
    """The Arrow type of the `vectors` column for a layer choice."""
    pa, _ = _pyarrow()
    inner = pa.list_(pa.list_(pa.float32()))
    return pa.list_(inner) if layers == "all" else inner


def schema(layers, metadata=None, extra=()):
    """The Arrow schema; `extra`: int64 columns before `index` (beam-embed's `input_index`)."""
    pa, _ = _pyarrow()
    return pa.schema(
        [(name, pa.int64()) for name in extra]
        + [
            ("index", pa.int64()),
            ("tokens", pa.list_(pa.string())),
            ("vectors", vectors_type(layers)),
        ],
        metadata=metadata,
    )


def nested_array(arrays):
    """Float arrays of one rank (each its own leading sizes, the same last one) ->
    an Arrow list array nested to that rank, float32, values copied once."""
    pa, _ = _pyarrow()
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    if not arrays:
        raise ValueError("nested_array needs at least one array")
    rank = arrays[0].ndim
    if rank < 1 or any(a.ndim != rank for a in arrays):
        raise ValueError("nested_array: the arrays must all have one rank >= 1")
    values = pa.array(np.concatenate([a.reshape(-1) for a in arrays]), type=pa.float32())
    # Innermost axis first: each level's lengths, row after row.
    for axis in range(rank - 1, -1, -1):
        lengths = np.concatenate(
            [np.full(int(np.prod(a.shape[:axis], dtype=np.int64)), a.shape[axis]) for a in arrays]
        )
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
        values = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)
    return values


def vectors_rank(layers):
    return 3 if layers == "all" else 2


def record_batch(indices, token_lists, arrays, layers, extra=None):
    """Rows (line index, tokens, the HDF5 output's array) -> an Arrow RecordBatch;
    `extra`: {name: int values} of the extra columns."""
    pa, _ = _pyarrow()
    extra = extra or {}
    return pa.RecordBatch.from_arrays(
        [pa.array(values, type=pa.int64()) for values in extra.values()]
        + [
            pa.array(indices, type=pa.int64()),
            pa.array(token_lists, type=pa.list_(pa.string())),
            nested_array(arrays).cast(vectors_type(layers)),
        ],
        schema=schema(layers, extra=tuple(extra)),
    )


def file_metadata(layers, sentences, dim):
    return {
        METADATA_PREFIX + "layers": layers,
        METADATA_PREFIX + "sentences": str(sentences),
        METADATA_PREFIX + "dim": str(dim),
    }


class RowWriter:
    """Write rows to `tmp_path` in row groups; `close()` ends the file (not durable yet).

    `extra_columns`: names of int64 columns each `add` also gives (keywords)."""

    def __init__(
        self, tmp_path, layers, metadata=None, row_group_rows=ROW_GROUP_ROWS, extra_columns=()
    ):
        _, pq = _pyarrow()
        self.layers = layers
        self.extra = tuple(extra_columns)
        self.rows = []
        self.row_group_rows = row_group_rows
        self.writer = pq.ParquetWriter(tmp_path, schema(layers, metadata, self.extra))

    def add(self, index, tokens, array, **extra):
        self.rows.append((index, tokens, array, tuple(extra[name] for name in self.extra)))
        if len(self.rows) >= self.row_group_rows:
            self.flush()

    def flush(self):
        if self.rows:
            indices, tokens, arrays, extras = zip(*self.rows)
            columns = {name: [e[k] for e in extras] for k, name in enumerate(self.extra)}
            self.writer.write_batch(
                record_batch(list(indices), list(tokens), arrays, self.layers, columns)
            )
            self.rows = []

    def close(self):
        """Write what is buffered and close the file (a second call does nothing)."""
        if self.writer is None:
            return
        writer = self.writer
        try:
            self.flush()
        finally:
            self.writer = None
            writer.close()


def merge_parts(store, plan, target, layers, sentences, check=None):
    """`PartStore.merge` for Parquet: every line, in line-index order, into a new
    Parquet file of a name of its own, made durable and renamed to `target`
    only when complete; `check()` (if given) runs just before the rename and
    may refuse it (the input changed)."""
    import h5py

    from keras_elmo.jobs import parts

    order = sorted((index, tokens) for batch in plan for index, tokens in batch)
    merged = os.path.join(store.folder, f"merged-{secrets.token_hex(8)}.parquet.tmp")
    dim = None
    # The dim is in the metadata, known after the first line: read it first.
    for index, _ in order[:1]:
        path = store.done.get(index)
        if path is not None:
            with h5py.File(path, "r") as f:
                dim = int(f[str(index)].shape[-1])
    writer = RowWriter(merged, layers, file_metadata(layers, sentences, dim))
    # Line-index order jumps between parts (each holds sorted chunks): keep them open.
    sources = {}
    try:
        for index, tokens in order:
            path = store.done.get(index)
            if path is None:
                raise InputError(
                    f"line {index + 1} is missing from {store.folder}; "
                    "did the input change during the run?"
                )
            if path not in sources:
                if len(sources) >= _OPEN_PARTS:
                    _close_all(sources)
                sources[path] = h5py.File(path, "r")
            writer.add(index, tokens, sources[path][str(index)][...])
        writer.close()
        if check is not None:
            check()
        parts.commit_file(merged, target)
    except BaseException:
        writer.close()
        with contextlib.suppress(OSError):
            os.remove(merged)
        raise
    finally:
        _close_all(sources)


_OPEN_PARTS = 64


def _close_all(sources):
    for handle in sources.values():
        handle.close()
    sources.clear()


def read_vectors(path, extra_column=None):
    """Iterate (index, tokens, float32 array) over a Parquet output, in file order
    (`keras-elmo embed`'s or one `spark-embed` part; a flagged row's array is None).

    With `extra_column` (beam-embed's `input_index`): ((index, tokens, array), value)."""
    _, pq = _pyarrow()
    f = pq.ParquetFile(path)
    meta = f.schema_arrow.metadata or {}
    layers = meta.get((METADATA_PREFIX + "layers").encode(), b"").decode() or None
    if layers is None:
        depth = 0
        kind = f.schema_arrow.field("vectors").type
        while hasattr(kind, "value_type"):
            depth, kind = depth + 1, kind.value_type
        rank = depth
    else:
        rank = vectors_rank(layers)
    columns = ["index", "tokens", "vectors"] + ([extra_column] if extra_column else [])
    for batch in f.iter_batches(columns=columns):
        indices = batch.column("index").to_pylist()
        tokens = batch.column("tokens").to_pylist()
        vectors = batch.column("vectors")
        extra = batch.column(extra_column).to_pylist() if extra_column else None
        for row, index in enumerate(indices):
            cell = vectors[row]
            item = index, tokens[row], list_to_numpy(cell, rank) if cell.is_valid else None
            yield (item, extra[row]) if extra_column else item


def list_to_numpy(scalar, rank):
    """An Arrow nested-list scalar of `rank` levels -> a float32 array (no Python floats)."""
    shape = []
    level = scalar.values  # the scalar's elements, an Arrow array
    shape.append(len(level))
    for _ in range(rank - 1):
        sizes = level.value_lengths().to_numpy(zero_copy_only=False) if len(level) else [0]
        shape.append(int(sizes[0]) if len(sizes) else 0)
        level = level.flatten()
    return level.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(shape)
