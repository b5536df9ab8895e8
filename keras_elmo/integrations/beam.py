"""ELMo on Apache Beam: embed a corpus with `RunInference`, read the results back.

An optional extra (`pip install -e '.[beam]'` in the checkout); nothing else in
keras_elmo imports this module. The pieces, from small to large:

- `ElmoModelHandler`: a `RunInference` model handler. It loads the layer once
  per worker process (Beam shares it between the threads of a process), takes
  keyed elements `(key, tokens)` and returns `(key, array)`, the array in the
  shape `keras-elmo embed` writes for that sentence (padding cut off). Batches
  are bounded in tokens as well as in sentences: a model call holds at most
  `batch_size` sentences and at most `max_batch_tokens` padded tokens.
- `EmbedSentences`: a `PTransform` from `(key, tokens or raw sentence)` to
  `(key, array)`: tokenizes raw sentences with the export's tokenizers,
  sorts each bundle's sentences by length in chunks (as `keras-elmo embed`
  does), so that consecutive elements, hence Beam's batches, carry little
  padding, then runs `RunInference`.
- `embed_corpus` (the `keras-elmo beam-embed` command): text files -> shards
  of vectors + `manifest.json` in an output directory, through Beam's file
  sinks (each bundle writes a temporary file; only the files of committed
  bundles are renamed into place, so a failed or retried bundle never leaves
  a half or a duplicate shard).
- `read_embeddings(output_dir)`: iterates `(input path, line number, array)`
  over either shard format; `parse_tfrecord_example` parses one record for
  `tf.data`.

Only the stateless mode exists here: every sentence starts from the model's
initial LSTM state, so the result of a line does not depend on which worker
or batch it lands in. (`keras-elmo embed --stateful` carries state from line
to line and so runs in one process only.)
"""

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import tempfile

import numpy as np

try:
    import apache_beam as beam
    from apache_beam.io import filebasedsink
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference import base as inference
    from apache_beam.utils.windowed_value import WindowedValue
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(
        "keras_elmo.integrations.beam needs Apache Beam: pip install -e '.[beam]' in the "
        "keras_elmo checkout."
    ) from err

from keras_elmo.checkpoints import download
from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError, MissingFileError, require_tensorflow
from keras_elmo.jobs import output, reader
from keras_elmo.text import characters, tokenization

FORMATS = output.BEAM_FORMATS
MANIFEST = "manifest.json"
MANIFEST_KIND = "keras_elmo.beam_embed"
SHARD_PREFIX = "embeddings"
SUFFIXES = {"hdf5": ".hdf5", "tfrecord": ".tfrecord"}
# Length buckets (in tokens) for Beam's own length-aware batching, which acts
# on its stateful path (`max_batch_duration_secs`, i.e. streaming).
BUCKET_BOUNDARIES = [8, 16, 24, 32, 48, 64, 96, 128, 256, 512]
# Older Beams have no length-aware batching; feature-test instead of a version check.
_HAS_LENGTH_BUCKETS = "batch_length_fn" in inspect.signature(inference.ModelHandler).parameters

# The Beam job's workers run TensorFlow: on JAX or PyTorch, this instead.
BEAM_INSTEAD = "call ElmoLayer on batches of sentences in your own loop"


# ---------------------------------------------------------------- files anywhere


def _is_local(path):
    return FileSystems.get_scheme(path) in (None, "file")


@contextlib.contextmanager
def _local_copy(path, suffix=""):
    """A local path holding `path`'s bytes: itself if local, else a temporary copy."""
    path = os.fspath(path)
    if _is_local(path) or download.is_url(path):
        yield path
        return
    if not FileSystems.exists(path):
        raise MissingFileError(f"{path} does not exist.")
    fd, local = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield local
    finally:
        os.remove(local)


def _write_text_atomically(path, text):
    """Write `path` through Beam's filesystems: temporary file, then rename."""
    tmp = path + ".tmp"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


# ---------------------------------------------------------------- the model


# Source fields that may name a file of any Beam filesystem, and the
# suffix of the local copy.
_COPIED = {"options_file": ".json", "weight_file": ".hdf5", "keras_file": ".keras"}


def load_layer(source, matmul_dtype=None):
    """An `ElmoLayer` from `source` with the export's settings: dict outputs,
    stateless, without dropout, float32 (`export.SERVING_SETTINGS`).

    `matmul_dtype` None keeps the model's own setting. Files of other
    filesystems (`gs://`, ...) are copied to local temporary files first.
    """
    from keras_elmo.layers.elmo_layer import ElmoLayer
    from keras_elmo.serving import export

    source = ModelSource.of(source).check()
    settings = dict(export.SERVING_SETTINGS)
    if matmul_dtype is not None:
        settings["matmul_dtype"] = matmul_dtype
    with contextlib.ExitStack() as stack:
        local = {
            field: stack.enter_context(_local_copy(path, _COPIED[field]))
            for field, path in source.describe().items()
            if field in _COPIED
        }
        return ElmoLayer.from_source(dataclasses.replace(source, **local), **settings)


def weights_sha256(layer):
    """A hash of the layer's weights: shapes and float32 bytes, in the layer's order.

    Independent of where the weights came from (a preset, the original
    files, a .keras file), so two runs can tell whether they used one model.
    """
    digest = hashlib.sha256()
    for weight in layer.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy()), dtype="<f4")
        # Not the variable paths: they carry the layer's name, which differs
        # between two copies of one model.
        digest.update(f"{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class _Embedder:
    """A loaded layer and its compiled `tokens (B, T) -> vectors` function."""

    def __init__(self, layer, layers):
        self.layer = layer
        self.layers = layers
        self.run = output.layer_output_fn(layer, layers)

    def embed(self, token_lists):
        """Token lists -> one array per sentence, as `keras-elmo embed` writes it."""
        # Views: the padded batch lives until its sentences are written.
        return output.embed_batch(self.run, token_lists, self.layers)


def _element_tokens(element):
    """BatchElements weight of a keyed element: its tokens (at least 1)."""
    return max(1, len(element[1]))


def _check_positive(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")


def model_batches(elements, batch_size, max_batch_tokens=None):
    """Split elements, sorted by length, into model calls.

    Each call has at most `batch_size` sentences and, when `max_batch_tokens`
    is set, at most that many padded tokens (rows x longest); a sentence
    longer than the budget goes alone.
    """
    ordered = sorted(elements, key=lambda element: len(element[1]))
    batch = []
    for element in ordered:
        width = max(1, len(element[1]))  # sorted: the newest is the longest
        full = len(batch) == batch_size or (
            max_batch_tokens is not None and batch and (len(batch) + 1) * width > max_batch_tokens
        )
        if full:
            yield batch
            batch = []
        batch.append(element)
    if batch:
        yield batch


class ElmoModelHandler(inference.ModelHandler):
    """`RunInference` handler: `(key, tokens)` -> `(key, array)`.

    Args:
        source: a `ModelSource` (or a preset name).
        layers: "all" (n_layers + 1, T, 2P), "top" or "average" (T, 2P): the
            choices and shapes of `keras-elmo embed`.
        batch_size: at most this many sentences per model call.
        max_batch_tokens: when set, Beam's batches are formed by tokens (its
            `element_size_fn`), and a model call holds at most this many padded
            tokens; None batches by sentences only, like `keras-elmo embed`.
        matmul_dtype: None (the model's own), "float32", "bfloat16" or "float16".
        max_batch_duration_secs: Beam's stateful batching (streaming); with it,
            Beam also buckets elements by token count where it can.
    """

    def __init__(
        self,
        source,
        layers=output.DEFAULT_LAYERS,
        batch_size=output.BATCH_SIZE,
        max_batch_tokens=None,
        matmul_dtype=None,
        max_batch_duration_secs=None,
    ):
        source = ModelSource.of(source)
        output.check_layers(layers)
        _check_positive("batch_size", batch_size)
        _check_positive("max_batch_tokens", max_batch_tokens, allow_none=True)
        self.source = source
        self.layers = layers
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.matmul_dtype = matmul_dtype
        kwargs = {}
        if max_batch_tokens is None:
            # A fixed Beam batch (min = max) of `batch_size` sentences.
            kwargs.update(min_batch_size=batch_size, max_batch_size=batch_size)
        else:
            kwargs.update(
                min_batch_size=max_batch_tokens,
                max_batch_size=max_batch_tokens,
                element_size_fn=_element_tokens,
            )
        if max_batch_duration_secs is not None:
            kwargs["max_batch_duration_secs"] = max_batch_duration_secs
            if _HAS_LENGTH_BUCKETS:
                kwargs.update(
                    batch_length_fn=_element_tokens, batch_bucket_boundaries=BUCKET_BOUNDARIES
                )
        super().__init__(**kwargs)

    def load_model(self):
        return _Embedder(load_layer(self.source, self.matmul_dtype), self.layers)

    def run_inference(self, batch, model, inference_args=None):
        for call in model_batches(batch, self.batch_size, self.max_batch_tokens):
            arrays = model.embed([tokens for _, tokens in call])
            yield from ((key, array) for (key, _), array in zip(call, arrays))

    def get_num_bytes(self, batch):
        # The default pickles the whole batch; the token text is the payload.
        return sum(len(token) for _, tokens in batch for token in tokens)

    def get_metrics_namespace(self):
        return "keras_elmo"


# ---------------------------------------------------------------- the transform


class _Tokenizer:
    """(key, tokens or raw sentence) -> (key, list of str tokens)."""

    def __init__(self, mode):
        if mode not in tokenization.TOKENIZERS:
            raise InputError(f"tokenizer must be one of {tokenization.TOKENIZERS}, got {mode!r}.")
        self.mode = mode

    def __call__(self, element):
        key, value = element
        if isinstance(value, bytes):
            value = characters.decode_utf8(value, f"element {key!r}")
        if isinstance(value, str):
            return key, self.split(value)
        tokens = list(value)
        for token in tokens:
            if not isinstance(token, str):
                raise InputError(f"element {key!r}: token {token!r} is not a str.")
        return key, tokens

    def split(self, sentence):
        if self.mode in tokenization.CORE_TOKENIZERS:
            return tokenization.tokenize_python(sentence, self.mode)
        # tf_text has no Python twin: the export's own graph op, one sentence at a time.
        import tensorflow as tf

        tokens = tokenization.tokenize_ragged(tf.constant([sentence]), self.mode)[0]
        return [t.decode("utf-8") for t in tokens.numpy()]


class _SortByLength(beam.DoFn):
    """Re-emit each bundle's elements sorted by token count, `chunk` at a time.

    Beam batches consecutive elements of a bundle, so sorted elements make
    batches of similar lengths (little padding), like `keras-elmo embed`'s
    sorted chunks. Windows are kept: elements are buffered per window.
    """

    def __init__(self, chunk):
        self.chunk = chunk

    def start_bundle(self):
        self.buffers = {}

    def process(self, element, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        buffer = self.buffers.setdefault(window, [])
        buffer.append((element, timestamp))
        if len(buffer) >= self.chunk:
            yield from self._flush(window)

    def finish_bundle(self):
        for window in list(self.buffers):
            yield from self._flush(window)

    def _flush(self, window):
        buffer = self.buffers.pop(window)
        buffer.sort(key=lambda item: len(item[0][1]))
        for element, timestamp in buffer:
            yield WindowedValue(element, timestamp, (window,))


class EmbedSentences(beam.PTransform):
    """PCollection of `(key, tokens or raw sentence)` -> `(key, array)`.

    Args:
        source: a `ModelSource` or a preset name.
        layers: "all", "top" or "average" (as `keras-elmo embed`).
        tokenizer: for raw sentences: "whitespace", "punctuation" or
            "tf_text" (the export's choices); token lists are used as given.
        batch_size, max_batch_tokens, matmul_dtype, max_batch_duration_secs:
            see `ElmoModelHandler`.
    """

    def __init__(
        self,
        source,
        layers=output.DEFAULT_LAYERS,
        tokenizer=tokenization.DEFAULT_TOKENIZER,
        batch_size=output.BATCH_SIZE,
        max_batch_tokens=None,
        matmul_dtype=None,
        max_batch_duration_secs=None,
    ):
        require_tensorflow("EmbedSentences (the Beam job)", BEAM_INSTEAD)
        super().__init__()
        self.handler = ElmoModelHandler(
            source,
            layers=layers,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            matmul_dtype=matmul_dtype,
            max_batch_duration_secs=max_batch_duration_secs,
        )
        self.tokenizer = _Tokenizer(tokenizer)
        # The same sorted-chunk size as `keras-elmo embed`.
        self.chunk = batch_size * output.CHUNK_BATCHES

    def expand(self, pcoll):
        return (
            pcoll
            | "Tokenize" >> beam.Map(self.tokenizer)
            | "SortByLength" >> beam.ParDo(_SortByLength(self.chunk))
            | "RunInference" >> inference.RunInference(self.handler)
        )


# ---------------------------------------------------------------- output shards


class _Hdf5Shard:
    def __init__(self, temp_path, local_path):
        import h5py

        self.temp_path = temp_path
        self.local_path = local_path
        self.file = h5py.File(local_path, "w")
        self.groups = {}  # input index -> its group (a lookup per line costs)


class _Hdf5Sink(filebasedsink.FileBasedSink):
    """One hdf5 file per bundle: group = input-file index, dataset = line number.

    h5py needs a seekable local file: a remote temporary shard is written
    locally first and copied into Beam's temporary file on close.
    """

    def __init__(self, file_path_prefix):
        super().__init__(
            file_path_prefix,
            coder=None,
            file_name_suffix=SUFFIXES["hdf5"],
            mime_type="application/x-hdf5",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path):
        if _is_local(temp_path):
            return _Hdf5Shard(temp_path, temp_path)
        fd, local = tempfile.mkstemp(suffix=SUFFIXES["hdf5"])
        os.close(fd)
        return _Hdf5Shard(temp_path, local)

    def write_record(self, shard, element):
        (index, line), array = element
        group = shard.groups.get(index)
        if group is None:
            group = shard.groups[index] = shard.file.create_group(str(index))
        group.create_dataset(str(line), data=array)

    def close(self, shard):
        shard.file.close()
        if shard.local_path == shard.temp_path:
            return
        try:
            with (
                FileSystems.create(shard.temp_path, self.mime_type, self.compression_type) as out,
                open(shard.local_path, "rb") as f,
            ):
                shutil.copyfileobj(f, out, 1 << 20)
        finally:
            os.remove(shard.local_path)


def _to_example(element):
    """((index, line), array) -> a serialized tf.train.Example."""
    import tensorflow as tf

    (index, line), array = element
    feature = {
        "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{index}/{line}".encode()])),
        "input_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        "line": tf.train.Feature(int64_list=tf.train.Int64List(value=[line])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(array.shape))),
        "values": tf.train.Feature(float_list=tf.train.FloatList(value=array.reshape(-1))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_tfrecord_example(serialized):
    """One `tfrecord` shard record -> dict of tensors, for `tf.data`.

    Keys: `key` (string "INPUT_INDEX/LINE"), `input_index` and `line`
    (int64), `array` (float32, the shape `keras-elmo embed` writes). Use as
    `tf.data.TFRecordDataset(shards).map(parse_tfrecord_example)`.
    """
    import tensorflow as tf

    features = tf.io.parse_single_example(
        serialized,
        {
            "key": tf.io.FixedLenFeature([], tf.string),
            "input_index": tf.io.FixedLenFeature([], tf.int64),
            "line": tf.io.FixedLenFeature([], tf.int64),
            "shape": tf.io.VarLenFeature(tf.int64),
            "values": tf.io.VarLenFeature(tf.float32),
        },
    )
    shape = tf.sparse.to_dense(features["shape"])
    array = tf.reshape(tf.sparse.to_dense(features["values"]), shape)
    return {
        "key": features["key"],
        "input_index": features["input_index"],
        "line": features["line"],
        "array": array,
    }


# ---------------------------------------------------------------- the pipeline


def match_inputs(patterns):
    """Sorted distinct paths matched by `patterns` (globs, any Beam filesystem)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    paths = set()
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        found = [m.path for m in result.metadata_list]
        if not found:
            raise MissingFileError(f"no input file matches {pattern!r}.")
        paths.update(found)
    return sorted(paths)


class _ReadLines(beam.DoFn):
    """(index, path) -> ((index, line number), tokens), with `keras-elmo embed`'s reader.

    Also emits (index, number of lines) on the "counts" output.
    """

    def process(self, item):
        index, path = item
        count = 0
        # Streamed through Beam's filesystems (gs://, ... read in place),
        # uncompressed: byte for byte what `embed` reads.
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            for line, tokens in reader.sentences_from_stream(stream, path):
                count += 1
                yield (index, line), tokens
        yield beam.pvalue.TaggedOutput("counts", (index, count))


def _finish_manifest(counts, manifest, output_dir, shards):
    """Write the completed manifest (runs once every shard is in place)."""
    done = dict(manifest)
    lines = dict(counts)
    done["inputs"] = [{**entry, "lines": lines[entry["index"]]} for entry in manifest["inputs"]]
    done["shards"] = sorted(FileSystems.split(path)[1] for path in shards)
    done["complete"] = True
    _write_text_atomically(FileSystems.join(output_dir, MANIFEST), json.dumps(done, indent=1))
    return len(done["shards"])


def build_manifest(inputs, source, layer, layers, tokenizer, file_format, batch_size):
    """The manifest's fields known before the run (`complete` False)."""
    import keras_elmo

    return {
        "kind": MANIFEST_KIND,
        "complete": False,
        "keras_elmo_version": keras_elmo.__version__,
        "beam_version": beam.__version__,
        "format": file_format,
        "layers": layers,
        "tokenizer": tokenizer,
        "batch_size": batch_size,
        "model": {
            "source": source.describe(),
            # A plain dict (the layer holds a Keras-tracked one, which does not pickle).
            "options": json.loads(json.dumps(layer.options)),
            "matmul_dtype": layer.matmul_dtype,
            "weights_sha256": weights_sha256(layer),
        },
        "inputs": [{"index": k, "path": path, "lines": None} for k, path in enumerate(inputs)],
        "shards": [],
    }


def embed_corpus(
    inputs,
    output_dir,
    source,
    *,
    file_format=FORMATS[0],
    pipeline_options=None,
    wait=True,
    **embed_options,
):
    """Embed every line of the files matched by `inputs` into `output_dir`.

    Lines are read as `keras-elmo embed` reads them; `output_dir` receives
    `manifest.json` (first with `"complete": false`, rewritten complete by
    the pipeline's last step) and the shards `embeddings-SSSSS-of-NNNNN.hdf5`
    or `.tfrecord`. `pipeline_options` are Beam's (`PipelineOptions` or a
    list of command-line flags). `embed_options` are `EmbedSentences`'
    (`layers`, `tokenizer`, `batch_size`, `max_batch_tokens`,
    `matmul_dtype`): one definition of what is computed, for this job and
    for your own pipelines. Returns the manifest (as written at the start
    when `wait` is False).
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    require_tensorflow("beam-embed (the Beam job)", BEAM_INSTEAD)
    if file_format not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {file_format!r}.")
    # Checks the embedding options (and resolves a preset name) before any I/O.
    transform = EmbedSentences(source, **embed_options)
    handler = transform.handler
    output_dir = os.fspath(output_dir)
    manifest_path = FileSystems.join(output_dir, MANIFEST)
    if FileSystems.exists(manifest_path):
        raise InputError(
            f"{output_dir} already holds a beam-embed output ({MANIFEST}); "
            "choose another output directory or delete that one."
        )
    paths = match_inputs(inputs)
    # Loaded here once too: a bad model fails before any worker starts, and
    # the manifest records the options and a hash of the weights used.
    layer = load_layer(handler.source, handler.matmul_dtype)
    manifest = build_manifest(
        paths,
        handler.source,
        layer,
        handler.layers,
        transform.tokenizer.mode,
        file_format,
        handler.batch_size,
    )
    del layer
    if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)
    _write_text_atomically(manifest_path, json.dumps(manifest, indent=1))

    if pipeline_options is None or isinstance(pipeline_options, (list, tuple)):
        pipeline_options = PipelineOptions(list(pipeline_options or []))
    prefix = FileSystems.join(output_dir, SHARD_PREFIX)
    pipeline = beam.Pipeline(options=pipeline_options)
    read = (
        pipeline
        | "Inputs" >> beam.Create(list(enumerate(paths)))
        | "ReadLines" >> beam.ParDo(_ReadLines()).with_outputs("counts", main="lines")
    )
    embedded = (
        read.lines
        # Spreads the lines of few large files over every worker.
        | "Spread" >> beam.Reshuffle()
        | "Embed" >> transform
    )
    if file_format == "hdf5":
        shards = embedded | "WriteHdf5" >> beam.io.Write(_Hdf5Sink(prefix))
    else:
        shards = (
            embedded
            | "ToExample" >> beam.Map(_to_example)
            | "WriteTFRecord"
            >> beam.io.WriteToTFRecord(prefix, file_name_suffix=SUFFIXES["tfrecord"])
        )
    _ = (
        read.counts
        # The counts as the main input (one list), the shards as a side input:
        # the BundleBasedDirectRunner was seen reading a side input of the
        # counts before ReadLines had filled it.
        | "AllCounts" >> beam.combiners.ToList()
        | "Manifest"
        >> beam.Map(
            _finish_manifest,
            manifest=manifest,
            output_dir=output_dir,
            shards=beam.pvalue.AsList(shards),
        )
    )
    result = pipeline.run()
    if not wait:
        return manifest
    result.wait_until_finish()
    return read_manifest(output_dir)


# ---------------------------------------------------------------- reading


def read_manifest(output_dir):
    path = FileSystems.join(os.fspath(output_dir), MANIFEST)
    if not FileSystems.exists(path):
        raise MissingFileError(f"{path} not found: not a beam-embed output directory.")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        manifest = json.loads(f.read().decode("utf-8"))
    if manifest.get("kind") != MANIFEST_KIND:
        raise InputError(f"{path} is not a beam-embed manifest.")
    return manifest


def _hdf5_records(path):
    import h5py

    with _local_copy(path, SUFFIXES["hdf5"]) as local, h5py.File(local, "r") as f:
        for group in sorted(f, key=int):
            for line in sorted(f[group], key=int):
                yield int(group), int(line), f[group][line][()]


def _tfrecord_records(path):
    import tensorflow as tf

    for record in tf.data.TFRecordDataset([path]).map(parse_tfrecord_example):
        yield int(record["input_index"]), int(record["line"]), record["array"].numpy()


def read_embeddings(output_dir, allow_incomplete=False):
    """Iterate `(input path, line number, array)` over a beam-embed output.

    Shard by shard, each in line order within an input file. The manifest is
    checked: an incomplete run is refused unless `allow_incomplete`; after the
    last record, a line seen twice or missing raises an error.
    """
    manifest = read_manifest(output_dir)
    if not manifest["complete"] and not allow_incomplete:
        raise InputError(
            f"{output_dir}: the run is not complete (manifest says so); "
            "pass allow_incomplete=True to read what is there."
        )
    paths = [entry["path"] for entry in manifest["inputs"]]
    reader = _hdf5_records if manifest["format"] == "hdf5" else _tfrecord_records
    seen = [set() for _ in paths]
    for shard in manifest["shards"]:
        for index, line, array in reader(FileSystems.join(os.fspath(output_dir), shard)):
            if line in seen[index]:
                raise InputError(f"{output_dir}: {paths[index]} line {line} appears twice.")
            seen[index].add(line)
            yield paths[index], line, array
    if manifest["complete"]:
        for entry, lines in zip(manifest["inputs"], seen):
            if len(lines) != entry["lines"]:
                raise InputError(
                    f"{output_dir}: {entry['path']} has {entry['lines']} lines but "
                    f"{len(lines)} arrays."
                )


__all__ = [
    "ElmoModelHandler",
    "EmbedSentences",
    "ModelSource",
    "embed_corpus",
    "load_layer",
    "model_batches",
    "parse_tfrecord_example",
    "read_embeddings",
    "read_manifest",
    "weights_sha256",
]
