"""ELMo on Apache Spark: embed a text column of a DataFrame (extra `[spark]`).

Nothing else in keras_elmo imports this module (`import keras_elmo` never
imports pyspark). Two entry points, one computation:

- `ElmoEmbedder`: a Spark ML `Transformer` (`setInputCol`, `setOutputCol`,
  Params, usable in a `Pipeline` and saved with it);
- `embed_column(df, input_col, ...)`: the same as a function.

The work runs in `DataFrame.mapInArrow` (measured against `mapInPandas` in
docs/performance.md, "Spark"): each Python worker loads the model once
(`_MODELS`, keyed by the `ModelSource` and the settings) and keeps it while
Spark reuses the worker; inside a partition rows are taken in chunks, each
chunk sorted by length and cut into model calls bounded by sentences and
by padded tokens (as the embed job and Beam batch); every output row is in
its input row's place, with the input columns kept.

Input: a string column of raw sentences (split by `tokenizer`: whitespace,
punctuation or tf_text, the export's tokenizers), a binary column (UTF-8
bytes) or an array<string> column of tokens. Output (`layers`):

- "all": array<array<array<float>>> (n_layers + 1, T, 2P), "top" and
  "average": array<array<float>> (T, 2P), the shapes of `keras-elmo embed`;
- TF Hub's names: "word_emb" (T, P), "lstm_outputs1", "lstm_outputs2"
  (T, 2P), "elmo" (T, 2P, the model's scalar mix);
- `sentence_col`: the mean over the sentence's tokens of the same vectors
  (TF Hub's `default` for "elmo"): array<float> (2P), or (n_layers + 1, 2P)
  for "all".

Bad rows (null or empty text, invalid UTF-8, a token that is not a string,
more than `max_tokens` tokens): with `handle_invalid="error"` (default) the
task fails with one `InputError` line naming the row (its `id_col` value,
or its partition and row number) before any model work; "skip" drops the
row; "keep" keeps it with null vectors and the reason in `error_col`.
"""

import functools
import re

from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError
from keras_elmo.jobs import batching, output, reader
from keras_elmo.limits import SERVING_DEFAULTS
from keras_elmo.text import characters, tokenization

try:
    import pyarrow as pa
    from pyspark import keyword_only
    from pyspark.ml import Transformer
    from pyspark.ml.param.shared import HasInputCol, HasOutputCol, Param, Params, TypeConverters
    from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
    from pyspark.sql import types as T
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(
        "keras_elmo.integrations.spark needs pyspark and pyarrow: pip install -e '.[spark]' "
        "in the keras_elmo checkout."
    ) from err

HUB_OUTPUTS = ("word_emb", "elmo")
_LSTM_OUTPUT = re.compile(r"lstm_outputs[1-9]\d*")

# Rows sorted together (and one output Arrow batch): bounds a worker's memory.
CHUNK_ROWS = 512
DEFAULT_ERROR_COL = "elmo_error"
HANDLE_INVALID = output.SPARK_HANDLE_INVALID
# Padded tokens (rows x longest) per model call; a longer sentence goes alone.
DEFAULT_MAX_BATCH_TOKENS = batching.BATCH_TOKENS
# A sentence over this many tokens is a bad row (the export's request limit).
DEFAULT_MAX_TOKENS = SERVING_DEFAULTS["max_tokens_per_sentence"]


def check_layers(layers):
    """`layers`: an embed layer choice or a TF Hub output name."""
    if layers in output.LAYER_CHOICES or layers in HUB_OUTPUTS or _LSTM_OUTPUT.fullmatch(layers):
        return layers
    raise InputError(
        f"layers must be one of {output.LAYER_CHOICES + HUB_OUTPUTS} or lstm_outputsN, "
        f"got {layers!r}."
    )


def vector_rank(layers):
    """Axes of one row's vectors: 3 for "all" (layer, token, dim), else 2."""
    return 3 if layers == "all" else 2


def _nested(kind, depth):
    for _ in range(depth):
        kind = T.ArrayType(kind, containsNull=False)
    return kind


# ---------------------------------------------------------------- one worker's model

# (source, matmul_dtype) -> layer; (source, matmul_dtype, layers) -> compiled function.
_MODELS = {}
_RUNS = {}


def _load_layer(source, matmul_dtype):
    key = (source, matmul_dtype)
    if key not in _MODELS:
        from keras_elmo.layers.elmo_layer import ElmoLayer
        from keras_elmo.serving import export

        settings = dict(export.SERVING_SETTINGS)
        if matmul_dtype is not None:
            settings["matmul_dtype"] = matmul_dtype
        _MODELS[key] = ElmoLayer.from_source(source.resolve(), **settings)
    return _MODELS[key]


def model_function(source, layers, matmul_dtype=None):
    """This worker's compiled `tokens (B, T) -> vectors` for the model, loaded once."""
    key = (source, matmul_dtype, layers)
    if key not in _RUNS:
        layer = _load_layer(source, matmul_dtype)
        if layers in output.LAYER_CHOICES:
            run = output.layer_output_fn(layer, layers)
        else:
            if layers.startswith("lstm_outputs") and int(layers[12:]) > layer.n_lstm_layers:
                raise InputError(
                    f"layers={layers!r}: the model has {layer.n_lstm_layers} LSTM layers."
                )
            run = _hub_output_fn(layer, layers)
        _RUNS[key] = run
    return _RUNS[key]


def _hub_output_fn(layer, name):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string)])
    def run(tokens):
        return layer(tokens)[name]

    return run


# ---------------------------------------------------------------- rows -> tokens


class _BadRow(Exception):
    pass


def _row_tokens(value, tokenizer, max_tokens):
    """One input cell -> its tokens; `_BadRow` says what is wrong with it."""
    if value is None:
        raise _BadRow("the text is null")
    if isinstance(value, (bytes, bytearray)):
        if len(value) > reader.MAX_LINE_BYTES:
            raise _BadRow(f"the text is over {reader.MAX_LINE_BYTES} bytes")
        try:
            value = characters.decode_utf8(bytes(value), "the text")
        except InputError as err:
            raise _BadRow(str(err).rstrip(".")) from None
    if isinstance(value, str):
        if len(value) > reader.MAX_LINE_BYTES:
            raise _BadRow(f"the text is over {reader.MAX_LINE_BYTES} characters")
        tokens = value if tokenizer == "tf_text" else tokenization.tokenize_python(value, tokenizer)
    else:
        tokens = list(value)
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise _BadRow(f"token {token!r} is not a non-empty string")
    if not tokens:
        raise _BadRow("the text is empty (no tokens)")
    if max_tokens is not None and not isinstance(tokens, str) and len(tokens) > max_tokens:
        raise _BadRow(f"{len(tokens)} tokens, over the limit max_tokens={max_tokens}")
    return tokens


def _tf_text_tokens(texts):
    import tensorflow as tf

    ragged = tokenization.tokenize_ragged(tf.constant(texts), "tf_text")
    return [[t.decode("utf-8") for t in row] for row in ragged.to_list()]


# ---------------------------------------------------------------- a partition


class _Settings:
    """What every partition computes with (pickled to the workers)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _where(settings, partition, row, batch, offset):
    if settings.id_col is not None:
        return f"row {settings.id_col}={batch.column(settings.id_col)[offset].as_py()!r}"
    return f"partition {partition}, row {row}"


def _chunks(batches, rows):
    """Arrow record batches -> record batches of at most `rows` rows."""
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def embed_partition(batches, settings):
    """mapInArrow's function: Arrow record batches in, the same plus vectors out."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    run = None
    row_base = 0
    for batch in _chunks(batches, settings.chunk_rows):
        column = batch.column(settings.input_col).to_pylist()
        tokens, errors = [None] * len(column), [None] * len(column)
        for offset, value in enumerate(column):
            try:
                tokens[offset] = _row_tokens(value, settings.tokenizer, settings.max_tokens)
            except _BadRow as bad:
                where = _where(settings, partition, row_base + offset, batch, offset)
                if settings.handle_invalid == "error":
                    raise InputError(
                        f"{where} of column {settings.input_col!r}: {bad} "
                        "(handle_invalid='skip' drops such rows, 'keep' flags them)."
                    ) from None
                errors[offset] = f"{where}: {bad}"
        if settings.tokenizer == "tf_text":
            _retokenize(tokens, errors, settings, partition, row_base, batch)
        row_base += len(column)
        good = [(row, toks) for row, toks in enumerate(tokens) if errors[row] is None]
        vectors = [None] * len(column)
        if good:
            if run is None:
                run = model_function(settings.source, settings.layers, settings.matmul_dtype)
            calls = batching.iter_token_budget_batches(
                good,
                lambda item: len(item[1]),
                settings.max_batch_tokens,
                None,
                settings.batch_size,
            )
            for call in calls:
                arrays = output.embed_batch(run, [t for _, t in call], settings.layers)
                for (row, _), array in zip(call, arrays):
                    vectors[row] = array
        keep = [
            row
            for row in range(len(column))
            if settings.handle_invalid != "skip" or errors[row] is None
        ]
        if len(keep) != len(column):
            batch = batch.take(pa.array(keep, type=pa.int64()))
        yield _output_batch(
            batch,
            [tokens[r] for r in keep],
            [vectors[r] for r in keep],
            [errors[r] for r in keep],
            settings,
        )


def _retokenize(tokens, errors, settings, partition, row_base, batch):
    """tf_text: the valid raw texts of a chunk split in one call, then checked."""
    rows = [row for row, value in enumerate(tokens) if isinstance(value, str)]
    if not rows:
        return
    for row, toks in zip(rows, _tf_text_tokens([tokens[row] for row in rows])):
        tokens[row] = toks
        problem = None
        if not toks:
            problem = "the text is empty (no tokens)"
        elif settings.max_tokens is not None and len(toks) > settings.max_tokens:
            problem = f"{len(toks)} tokens, over the limit max_tokens={settings.max_tokens}"
        if problem is not None:
            where = _where(settings, partition, row_base + row, batch, row)
            if settings.handle_invalid == "error":
                raise InputError(f"{where} of column {settings.input_col!r}: {problem}.")
            errors[row] = f"{where}: {problem}"


def _output_batch(batch, tokens, vectors, errors, settings):
    from keras_elmo.jobs import parquet

    rank = vector_rank(settings.layers)
    columns, names = list(batch.columns), list(batch.schema.names)
    valid = [v is not None for v in vectors]
    columns.append(_nullable_nested(parquet, [v for v in vectors if v is not None], valid, rank))
    names.append(settings.output_col)
    if settings.sentence_col is not None:
        means = [v.mean(axis=-2) for v in vectors if v is not None]
        columns.append(_nullable_nested(parquet, means, valid, rank - 1))
        names.append(settings.sentence_col)
    if settings.tokens_col is not None:
        columns.append(
            pa.array(
                [t if e is None else None for t, e in zip(tokens, errors)],
                type=pa.list_(pa.string()),
            )
        )
        names.append(settings.tokens_col)
    if settings.handle_invalid == "keep":
        columns.append(pa.array(errors, type=pa.string()))
        names.append(settings.error_col)
    return pa.RecordBatch.from_arrays(columns, names=names)


def _nullable_nested(parquet, arrays, valid, rank):
    """Float arrays for the valid rows -> a nested float32 list array, null elsewhere."""
    kind = pa.float32()
    for _ in range(rank):
        kind = pa.list_(kind)
    if not arrays:
        return pa.nulls(len(valid), type=kind)
    dense = parquet.nested_array(arrays).cast(kind)
    if all(valid):
        return dense
    # Null rows: take from the dense array with null positions.
    positions, k = [], 0
    for ok in valid:
        positions.append(k if ok else None)
        k += ok
    return dense.take(pa.array(positions, type=pa.int64()))


# ---------------------------------------------------------------- the DataFrame API


def _output_schema(schema, settings):
    fields = list(schema.fields)
    rank = vector_rank(settings.layers)
    fields.append(T.StructField(settings.output_col, _nested(T.FloatType(), rank), True))
    if settings.sentence_col is not None:
        fields.append(T.StructField(settings.sentence_col, _nested(T.FloatType(), rank - 1), True))
    if settings.tokens_col is not None:
        fields.append(T.StructField(settings.tokens_col, _nested(T.StringType(), 1), True))
    if settings.handle_invalid == "keep":
        fields.append(T.StructField(settings.error_col, T.StringType(), True))
    return T.StructType(fields)


def _check_input_column(schema, input_col):
    if input_col not in schema.names:
        raise InputError(f"no column {input_col!r} in the DataFrame (it has {schema.names}).")
    kind = schema[input_col].dataType
    if isinstance(kind, (T.StringType, T.BinaryType)):
        return "text"
    if isinstance(kind, T.ArrayType) and isinstance(kind.elementType, T.StringType):
        return "tokens"
    raise InputError(
        f"column {input_col!r} is {kind.simpleString()}; expected string, binary or array<string>."
    )


def embed_settings(
    schema,
    input_col,
    output_col="elmo",
    source="elmo-small-en",
    *,
    layers="average",
    tokenizer=tokenization.DEFAULT_TOKENIZER,
    sentence_col=None,
    tokens_col=None,
    batch_size=output.BATCH_SIZE,
    max_batch_tokens=DEFAULT_MAX_BATCH_TOKENS,
    max_tokens=DEFAULT_MAX_TOKENS,
    matmul_dtype=None,
    handle_invalid="error",
    error_col=DEFAULT_ERROR_COL,
    id_col=None,
    chunk_rows=CHUNK_ROWS,
):
    """The checked options of `embed_column` for a DataFrame of `schema` (every
    check runs on the driver, before any executor work)."""
    source = ModelSource.of(source).check()
    check_layers(layers)
    if tokenizer not in tokenization.TOKENIZERS:
        raise InputError(f"tokenizer must be one of {tokenization.TOKENIZERS}, got {tokenizer!r}.")
    if handle_invalid not in HANDLE_INVALID:
        raise InputError(f"handle_invalid must be one of {HANDLE_INVALID}, got {handle_invalid!r}.")
    for name, value, optional in (
        ("batch_size", batch_size, False),
        ("max_batch_tokens", max_batch_tokens, True),
        ("max_tokens", max_tokens, True),
        ("chunk_rows", chunk_rows, False),
    ):
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    _check_input_column(schema, input_col)
    if id_col is not None and id_col not in schema.names:
        raise InputError(f"no id column {id_col!r} in the DataFrame.")
    new = [c for c in (output_col, sentence_col, tokens_col) if c is not None]
    if handle_invalid == "keep":
        new.append(error_col)
    for name in new:
        if name in schema.names or new.count(name) > 1:
            raise InputError(f"output column {name!r} exists already; choose another name.")
    settings = _Settings(
        source=source,
        layers=layers,
        tokenizer=tokenizer,
        input_col=input_col,
        output_col=output_col,
        sentence_col=sentence_col,
        tokens_col=tokens_col,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        max_tokens=max_tokens,
        matmul_dtype=matmul_dtype,
        handle_invalid=handle_invalid,
        error_col=error_col,
        id_col=id_col,
        chunk_rows=chunk_rows,
    )
    return settings


def embed_column(df, input_col, output_col="elmo", source="elmo-small-en", **options):
    """`df` with the ELMo vectors of `input_col` added as `output_col`.

    `options`: `embed_settings`' keywords (layers, tokenizer, sentence_col,
    tokens_col, batch_size, max_batch_tokens, max_tokens, matmul_dtype,
    handle_invalid, error_col, id_col); the module docstring says what each
    does. Lazy, like every DataFrame transformation: the model loads on the
    executors when an action runs. `source`: a `ModelSource`, a preset name
    or a model directory; local paths must exist on every executor
    (docs/scaling-out.md, "Spark")."""
    settings = embed_settings(df.schema, input_col, output_col, source, **options)
    return df.mapInArrow(
        functools.partial(embed_partition, settings=settings), _output_schema(df.schema, settings)
    )


# ElmoEmbedder's Params beside inputCol / outputCol: (name, doc, type).
_PARAMS = (
    ("model", "preset name or model directory", "string"),
    ("optionsFile", "options.json (with weightFile)", "string"),
    ("weightFile", "weights.hdf5 (with optionsFile)", "string"),
    ("kerasFile", "a .keras file", "string"),
    ("efmlDir", "an ELMoForManyLangs model directory", "string"),
    ("layers", "all, top, average, word_emb, lstm_outputsN or elmo", "string"),
    ("tokenizer", "whitespace, punctuation or tf_text", "string"),
    ("sentenceCol", "the mean over tokens (optional)", "string"),
    ("tokensCol", "the tokens (optional)", "string"),
    ("batchSize", "sentences per model call", "int"),
    ("maxBatchTokens", "padded tokens per model call", "int"),
    ("maxTokens", "tokens per sentence (0: no limit)", "int"),
    ("matmulDtype", "float32, bfloat16 or float16", "string"),
    ("handleInvalid", "error, skip or keep", "string"),
    ("errorCol", "the reason of a kept bad row", "string"),
    ("idCol", "names bad rows in errors", "string"),
)


class ElmoEmbedder(
    Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable
):
    """A Spark ML `Transformer`: `embed_column` as Params, for a `Pipeline`.

    >>> embedder = ElmoEmbedder(inputCol="text", outputCol="elmo", layers="top")
    >>> embedder.setSentenceCol("sentence").getLayers()
    'top'

    Params (Spark's camelCase names; `embed_column` documents each): `model`
    (a preset name or a model directory), `optionsFile` + `weightFile`,
    `kerasFile`, `efmlDir`, `layers`, `tokenizer`, `sentenceCol`, `tokensCol`,
    `batchSize`, `maxBatchTokens`, `maxTokens` (0: no limit), `matmulDtype`,
    `handleInvalid`, `errorCol`, `idCol`.
    """

    @keyword_only
    def __init__(self, **params):
        super().__init__()
        self._setDefault(
            outputCol="elmo",
            layers="average",
            tokenizer=tokenization.DEFAULT_TOKENIZER,
            batchSize=output.BATCH_SIZE,
            maxBatchTokens=DEFAULT_MAX_BATCH_TOKENS,
            maxTokens=DEFAULT_MAX_TOKENS,
            handleInvalid="error",
            errorCol=DEFAULT_ERROR_COL,
        )
        self._set(**self._input_kwargs)

    def __getattr__(self, name):
        # setX / getX for every Param (Spark's own classes spell each out).
        for prefix in ("set", "get"):
            if name.startswith(prefix) and len(name) > 3:
                param = name[3].lower() + name[4:]
                if param in ("inputCol", "outputCol") or not self.hasParam(param):
                    break
                if prefix == "set":
                    return lambda value: self._set(**{param: value})
                return lambda: self.getOrDefault(param)
        raise AttributeError(name)

    def setInputCol(self, value):
        return self._set(inputCol=value)

    def setOutputCol(self, value):
        return self._set(outputCol=value)

    def _optional(self, name):
        return self.getOrDefault(name) if self.isDefined(name) else None

    def source(self):
        fields = {
            "preset": self._optional("model"),
            "options_file": self._optional("optionsFile"),
            "weight_file": self._optional("weightFile"),
            "keras_file": self._optional("kerasFile"),
            "efml_dir": self._optional("efmlDir"),
        }
        from keras_elmo.checkpoints import model_source

        given = model_source.check_choice(fields, default="elmo-small-en")
        return ModelSource(**given)

    def _transform(self, dataset):
        max_tokens = self.getOrDefault("maxTokens")
        return embed_column(
            dataset,
            self.getInputCol(),
            self.getOutputCol(),
            self.source(),
            layers=self.getOrDefault("layers"),
            tokenizer=self.getOrDefault("tokenizer"),
            sentence_col=self._optional("sentenceCol"),
            tokens_col=self._optional("tokensCol"),
            batch_size=self.getOrDefault("batchSize"),
            max_batch_tokens=self.getOrDefault("maxBatchTokens"),
            max_tokens=max_tokens or None,
            matmul_dtype=self._optional("matmulDtype"),
            handle_invalid=self.getOrDefault("handleInvalid"),
            error_col=self.getOrDefault("errorCol"),
            id_col=self._optional("idCol"),
        )


__all__ = ["ElmoEmbedder", "embed_column", "embed_partition", "model_function"]


_CONVERTERS = {"string": TypeConverters.toString, "int": TypeConverters.toInt}
for _name, _doc, _kind in _PARAMS:
    setattr(ElmoEmbedder, _name, Param(Params._dummy(), _name, _doc, _CONVERTERS[_kind]))


# ---------------------------------------------------------------- spark-embed: files -> Parquet

JOB_FILE = "_keras_elmo_job.json"
SUCCESS_FILE = "_SUCCESS"
TEMP_DIR = "_temporary"
PART_NAME = "part-{:05d}.parquet"
# The columns a text input's rows carry (raw bytes: invalid UTF-8 is an error, not U+FFFD).
TEXT_COLUMNS = ("index", "text")


def _input_files(path):
    import glob
    import os

    from keras_elmo.errors import MissingFileError

    matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    files = []
    for match in matches:
        if os.path.isdir(match):
            files += sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(match)
                for name in names
                if not name.startswith((".", "_"))
            )
        elif os.path.isfile(match):
            files.append(match)
    if not files:
        raise MissingFileError(f"input not found (or empty): {path}")
    return files


def input_format(path):
    """ "parquet" when the input's first file starts with the Parquet magic, else "text"."""
    from keras_elmo.jobs import parquet

    return "parquet" if parquet.is_parquet(_input_files(path)[0]) else "text"


def read_input(spark, path, file_format=None, partitions=None, column=None):
    """The input as a DataFrame and the column to embed.

    Text: `index` (the 0-based line number over the files in name order,
    as `keras-elmo embed` numbers one file's lines) and `text` (the line's
    bytes). Parquet: its own columns, `column` (default "text") embedded."""
    from pyspark.sql import types as st

    file_format = file_format or input_format(path)
    if file_format == "parquet":
        df = spark.read.parquet(path)
        if partitions is not None:
            df = df.repartition(partitions)
        return df, column or "text"
    files = _input_files(path)
    lines = spark.sparkContext.textFile(
        ",".join(files), minPartitions=partitions or 2, use_unicode=False
    )
    # A UTF-8 byte-order mark at the start of a file is not text (the embed reader drops it).
    rows = lines.zipWithIndex().map(lambda pair: (pair[1], _strip_bom(pair[0])))
    schema = st.StructType(
        [st.StructField("index", st.LongType(), False), st.StructField("text", st.BinaryType())]
    )
    return spark.createDataFrame(rows, schema), "text"


def _strip_bom(line):
    return bytearray(line[3:] if line.startswith(b"\xef\xbb\xbf") else line)


def _write_partition(batches, settings, output_dir, keep_columns):
    """mapInArrow's function of spark-embed: embed one partition into its own Parquet
    file (temporary name, then renamed); a partition whose file exists is skipped."""
    import os

    import pyarrow.parquet as pq
    from pyspark import TaskContext

    from keras_elmo.jobs import parts

    context = TaskContext.get()
    partition = context.partitionId()
    final = os.path.join(output_dir, PART_NAME.format(partition))
    rows = 0
    if os.path.exists(final):
        for _ in batches:  # finished by an earlier run
            pass
        rows = pq.ParquetFile(final).metadata.num_rows
        yield pa.RecordBatch.from_pydict(
            {"partition": [partition], "rows": [rows], "skipped": [True]}
        )
        return
    tmp = os.path.join(
        output_dir, TEMP_DIR, f"{PART_NAME.format(partition)}.{context.attemptNumber()}.tmp"
    )
    writer = None
    try:
        for batch in embed_partition(batches, settings):
            table = pa.Table.from_batches([batch]).select(keep_columns)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # an empty partition still gets its (empty) file
            writer = pq.ParquetWriter(tmp, _empty_schema(settings, keep_columns))
        writer.close()
        writer = None
        parts.commit_file(tmp, final)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    yield pa.RecordBatch.from_pydict({"partition": [partition], "rows": [rows], "skipped": [False]})


def _empty_schema(settings, keep_columns):
    fields = {"index": pa.int64(), "tokens": pa.list_(pa.string())}
    kind = pa.float32()
    for _ in range(vector_rank(settings.layers)):
        kind = pa.list_(kind)
    fields[settings.output_col] = kind
    if settings.sentence_col is not None:
        fields[settings.sentence_col] = kind.value_type
    if settings.handle_invalid == "keep":
        fields[settings.error_col] = pa.string()
    return pa.schema([(name, fields.get(name, pa.string())) for name in keep_columns])


def _job_record(files, file_format, source, options, partitions):
    import os

    return {
        "kind": "keras_elmo.spark_embed",
        "inputs": [{"path": os.path.abspath(f), "bytes": os.path.getsize(f)} for f in files],
        "input_format": file_format,
        "model": source.describe(),
        "options": options,
        "partitions": partitions,
    }


def check_output_dir(output_dir, job=None):
    """OUTPUT may be new, an unfinished spark-embed of the same job, or nothing else.

    Returns the finished partition files of an unfinished run of `job`."""
    import json
    import os

    if not os.path.exists(output_dir):
        return []
    if not os.path.isdir(output_dir):
        raise InputError(f"output {output_dir} exists and is not a directory.")
    job_path = os.path.join(output_dir, JOB_FILE)
    names = [n for n in os.listdir(output_dir) if n not in (TEMP_DIR,)]
    if not os.path.exists(job_path):
        if names:
            raise InputError(
                f"output {output_dir} exists and is not a spark-embed output; "
                "give a new or empty directory."
            )
        return []
    if os.path.exists(os.path.join(output_dir, SUCCESS_FILE)):
        raise InputError(f"output {output_dir} holds a finished spark-embed run; delete it first.")
    if job is not None:
        with open(job_path, encoding="utf-8") as f:
            old = json.load(f)
        for key, value in job.items():
            if old.get(key) != value:
                raise InputError(
                    f"{output_dir} holds an unfinished run with a different {key} "
                    f"({old.get(key)!r}, now {value!r}); delete it to start over."
                )
    return sorted(n for n in names if re.fullmatch(r"part-\d{5}\.parquet", n))


def embed_files(
    spark,
    input_path,
    output_dir,
    source="elmo-small-en",
    *,
    file_format=None,
    column=None,
    partitions=None,
    **embed_options,
):
    """`keras-elmo spark-embed`: text or Parquet files -> OUTPUT/part-NNNNN.parquet.

    One Parquet file per input partition (text input: `index`, `tokens`, the
    vectors, optionally the sentence vector and the error column; Parquet
    input: its columns plus those), each written under OUTPUT/_temporary/ and
    renamed into place when whole; a rerun of the same job skips the
    partitions whose file exists. `embed_options` are `embed_column`'s.
    Returns {"partitions", "rows", "skipped"}.
    """
    import json
    import os

    from keras_elmo.jobs import parts

    source = ModelSource.of(source).check()
    output_dir = os.path.abspath(os.fspath(output_dir))
    check_output_dir(output_dir)
    files = _input_files(input_path)
    file_format = file_format or input_format(input_path)
    df, column = read_input(spark, input_path, file_format, partitions, column)
    n_partitions = df.rdd.getNumPartitions()
    job = _job_record(files, file_format, source, dict(sorted(embed_options.items())), n_partitions)
    check_output_dir(output_dir, job)
    os.makedirs(os.path.join(output_dir, TEMP_DIR), exist_ok=True)
    for name in os.listdir(os.path.join(output_dir, TEMP_DIR)):
        os.remove(os.path.join(output_dir, TEMP_DIR, name))  # a killed run's scratch
    if not os.path.exists(os.path.join(output_dir, JOB_FILE)):
        tmp = os.path.join(output_dir, TEMP_DIR, JOB_FILE)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(job, f, indent=1)
        parts.commit_file(tmp, os.path.join(output_dir, JOB_FILE))
    if file_format == "text":
        embed_options.update(id_col="index", tokens_col="tokens")
    # Checks every option and the column; the settings go to the workers.
    settings = embed_settings(df.schema, column, "vectors", source, **embed_options)
    names = _output_schema(df.schema, settings).names
    if file_format == "text":
        # The embed output's columns first (jobs.parquet), the raw bytes dropped.
        first = ["index", "tokens", "vectors"]
        keep = first + [n for n in names if n not in first and n != "text"]
    else:
        keep = names
    from pyspark.sql import types as st

    summary_schema = st.StructType(
        [
            st.StructField("partition", st.LongType()),
            st.StructField("rows", st.LongType()),
            st.StructField("skipped", st.BooleanType()),
        ]
    )
    summary = df.mapInArrow(
        functools.partial(
            _write_partition, settings=settings, output_dir=output_dir, keep_columns=keep
        ),
        summary_schema,
    ).collect()
    result = {
        "partitions": n_partitions,
        "rows": sum(r["rows"] for r in summary),
        "skipped": sum(1 for r in summary if r["skipped"]),
    }
    missing = [
        p
        for p in range(n_partitions)
        if not os.path.exists(os.path.join(output_dir, PART_NAME.format(p)))
    ]
    if missing:
        raise InputError(f"partitions {missing} of {output_dir} were not written.")
    os.rmdir(os.path.join(output_dir, TEMP_DIR))
    with open(os.path.join(output_dir, SUCCESS_FILE), "w", encoding="utf-8") as f:
        json.dump(result, f)
    return result
