"""`ElmoLayer`: the whole ELMo model as one Keras 3 layer."""

import json

import keras
import tensorflow as tf
from keras import ops

from keras_elmo import limits as limits_lib
from keras_elmo import options as options_lib
from keras_elmo.checkpoints import download, efml
from keras_elmo.checkpoints import original as conversion
from keras_elmo.checkpoints.model_source import ModelSource
from keras_elmo.errors import InputError
from keras_elmo.layers import backend_path
from keras_elmo.layers import preprocessor as preprocessor_lib
from keras_elmo.layers import token_cache as token_cache_lib
from keras_elmo.layers.bilm import BidirectionalLM
from keras_elmo.layers.efml_token_encoder import EfmlTokenEncoder
from keras_elmo.layers.scalar_mix import ScalarMix
from keras_elmo.layers.token_encoder import CharCNNTokenEncoder
from keras_elmo.text import characters, tokenization

FINE_TUNE_MODES = ("mix", "top", "all")
# Rows of carried LSTM state of a stateful layer with neither state_rows nor
# max_batch_size given.
DEFAULT_STATE_ROWS = 128
OUTPUT_MODES = ("elmo", "dict")


@keras.saving.register_keras_serializable(package="keras_elmo")
class ElmoLayer(keras.layers.Layer):
    """ELMo contextual word vectors for a batch of sentences, as one Keras layer.

    The whole ELMo model (Peters et al., 2018): a character CNN encodes each
    token without context, a stack of bidirectional LSTM language-model
    layers reads the sentence both ways, and a learned scalar mix of the
    layers (`ScalarMix`) gives each token one vector of size
    `2 * projection_dim`. `ElmoLayer.from_preset` loads a model by name (the
    shipped "elmo-small-en", the published AllenNLP models),
    `ElmoLayer.from_original` the published `options.json` + `weights.hdf5`
    files (bilm-tf's numbers to 1e-6), `ElmoLayer.from_elmoformanylangs` an
    ELMoForManyLangs model; made from `options` alone the layer has random
    weights, to train or to load weights into.

    Args:
        options: dict. The model options in the layout of the published
            `options.json` (see `keras_elmo.load_options` and
            `keras_elmo.published_options`).
        num_output_representations: int. How many independent scalar mixes
            to return (one per task that uses the layer). Defaults to `1`.
        do_layer_norm: bool. Whether to apply a masked layer norm to each
            layer before mixing (bilm-tf semantics: statistics over real
            tokens only, boundaries excluded). Defaults to `False`.
        l2_coef: float. L2 penalty on the mix weights, added to
            `layer.losses`. Defaults to `0.0`.
        use_top_only: bool. Whether the mix returns `gamma * top LSTM layer`
            instead of a weighted sum. Defaults to `False`.
        dropout: float in [0, 1). Dropout rate on the mixed vectors, applied
            in training only. Defaults to `0.0`.
        fine_tune: str. Which part trains with the layer: `"mix"` (only the
            scalar mixes, as TF Hub's module), `"top"` (the mixes and the
            top LSTM layer) or `"all"` (the whole biLM). Defaults to `"mix"`.
        stateful: bool. Whether each batch row's LSTM state carries into the
            next call, as the original code does; `reset_states()` starts
            over. Defaults to `False` (every call starts from the stored
            initial state, so outputs never depend on earlier calls).
        max_batch_size: int or `None`. Request limit: the largest batch a
            call accepts (`None`: any). Defaults to `None`.
        state_rows: int or `None`. The rows of carried LSTM state a stateful
            layer keeps, i.e. the largest batch a stateful call takes.
            Defaults to `None`: `max_batch_size` when that is set, else 128.
            (`max_batch_size` used to set both; configs saved then load with
            the same rows.)
        output_mode: str. `"elmo"` (the ELMo vectors) or `"dict"` (every
            layer, with TF Hub's names; see Returns). Defaults to `"elmo"`.
        token_cache_size: int. `0` lets `cache_vocabulary` cache a
            vocabulary of any size; `N > 0` makes it require `N` distinct
            tokens. The cache itself (vocabulary and vectors) is saved with
            the layer in a `.keras` file, not in the config (`TokenCache`).
            Defaults to `0`.
        matmul_dtype: str. `"float32"` (the original numbers), `"bfloat16"`
            or `"float16"`: the optional lower-precision path, which rounds
            the operands of the model's matmuls and convolutions (sums,
            state, outputs and weights stay float32); what it rounds, its
            speed and error: "Lower precision" in docs/performance.md. The
            0.2 name `lstm_matmul_dtype` is still accepted. Defaults to
            `"float32"`.
        max_tokens_per_sentence: int or `None`. Request limit on the longest
            sentence's tokens (for dense tokens or char ids, the padded `T`).
            Defaults to `None` (unbounded).
        max_tokens_per_request: int or `None`. Request limit on batch x the
            longest sentence's tokens. Defaults to `None` (unbounded). A call
            over any limit raises `tf.errors.InvalidArgumentError` naming it,
            before any model work (see `keras_elmo.limits`).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`,
            `trainable`).

    Call arguments:
        inputs: the sentences, in any of these forms:
            - int char ids `(batch, T, max_chars)`, as made by
              `keras_elmo.batch_to_ids`;
            - string tokens `(batch, T)` with `""` as padding, only at the
              end of a row (a `""` before a real token raises `InputError`,
              in a graph `tf.errors.InvalidArgumentError`), or a ragged
              `(batch, None)` string tensor;
            - raw sentences, strings `(batch,)`, split on whitespace in the
              graph (`keras_elmo.ElmoTokenizer` offers other tokenizers);
            - Python lists of token lists (of any lengths: the shorter are
              padded with `""`) or of sentence strings.
            The text handling is `keras_elmo.ElmoPreprocessor`'s. On JAX and
            PyTorch an eager call sends text through it first (TensorFlow
            ops), and a model's input is char ids: `fit` on text maps
            `layer.preprocessor()` over a `tf.data` pipeline
            (docs/backends.md). There the token cache is not used (the char
            CNN gives the same vectors). An ELMoForManyLangs model looks its
            string tokens up eagerly (TensorFlow tables) and takes the ids
            of `EfmlTokenEncoder.packed_ids`.
        training: bool or `None`. Whether dropout applies. Defaults to `None`
            (Keras's training flag, e.g. `True` inside `model.fit`).

    Returns:
        With `output_mode="elmo"`: the ELMo vectors `(batch, T, 2P)` (`P` is
        `options["lstm"]["projection_dim"]`), zero at padding, with a Keras
        mask; a list of them when `num_output_representations > 1`. With
        `output_mode="dict"`: a dict with TF Hub's names: `word_emb`
        `(batch, T, P)`, `lstm_outputs1`, ... `(batch, T, 2P)`, `elmo`
        (then `elmo_1`, ... for further mixes), `default` `(batch, 2P)` (the
        mean of `elmo` over real tokens) and `sequence_len` `(batch,)`.

    Mixed precision: the biLM computes in float32 (its sublayers are float32
    layers; only `matmul_dtype` changes that); the outputs are cast to
    the layer's compute dtype, so under `"mixed_float16"` or
    `"mixed_bfloat16"` the layers after it see that dtype.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import keras_elmo
    >>> elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en")
    >>> vectors = elmo([["The", "cat", "sat", "."], ["Hello", "!"]])
    >>> tuple(vectors.shape)  # 2 x the model's projection_dim of 128
    (2, 4, 256)
    >>> float(np.abs(vectors[1, 2:]).max())  # "Hello !" has 2 tokens: zeros after
    0.0

    In a model that takes raw text (`ElmoTokenizer` gives the mask):

    >>> text = keras.Input(shape=(), dtype="string")
    >>> x = elmo(keras_elmo.ElmoTokenizer()(text))
    >>> x = keras.layers.GlobalAveragePooling1D()(x)  # averages real tokens only
    >>> model = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    >>> model.output_shape
    (None, 2)

    Reference:
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL.
    """

    def __init__(
        self,
        options,
        num_output_representations=1,
        do_layer_norm=False,
        l2_coef=0.0,
        use_top_only=False,
        dropout=0.0,
        fine_tune="mix",
        stateful=False,
        max_batch_size=None,
        output_mode="elmo",
        token_cache_size=0,
        matmul_dtype="float32",
        max_tokens_per_sentence=None,
        max_tokens_per_request=None,
        state_rows=None,
        **kwargs,
    ):
        if "lstm_matmul_dtype" in kwargs:  # the 0.2 name (configs saved then carry it)
            old = kwargs.pop("lstm_matmul_dtype")
            if matmul_dtype != "float32" and old != matmul_dtype:
                raise ValueError(
                    f"ElmoLayer: lstm_matmul_dtype={old!r} (the old name of matmul_dtype) "
                    f"contradicts matmul_dtype={matmul_dtype!r}; give matmul_dtype only."
                )
            matmul_dtype = old
        super().__init__(**kwargs)
        self.options = options_lib.validate_options(options)
        if (
            not isinstance(num_output_representations, int)
            or isinstance(num_output_representations, bool)
            or num_output_representations < 1
        ):
            raise ValueError(
                f"num_output_representations must be a positive integer, got "
                f"{num_output_representations!r}."
            )
        if fine_tune not in FINE_TUNE_MODES:
            raise ValueError(f"fine_tune must be one of {FINE_TUNE_MODES}, got {fine_tune!r}.")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.num_output_representations = num_output_representations
        self.do_layer_norm = bool(do_layer_norm)
        self.l2_coef = float(l2_coef)
        self.use_top_only = bool(use_top_only)
        self.dropout = float(dropout)
        self.fine_tune = fine_tune
        self.stateful = bool(stateful)
        who = "ElmoLayer"
        self.max_batch_size = limits_lib.validate_limit("max_batch_size", max_batch_size, who)
        self.max_tokens_per_sentence = limits_lib.validate_limit(
            "max_tokens_per_sentence", max_tokens_per_sentence, who
        )
        self.max_tokens_per_request = limits_lib.validate_limit(
            "max_tokens_per_request", max_tokens_per_request, who
        )
        self.state_rows = limits_lib.validate_limit("state_rows", state_rows, who)
        self.output_mode = output_mode
        self.matmul_dtype = options_lib.validate_matmul_dtype(matmul_dtype, "ElmoLayer")
        # String ops and UniqueV2 have no XLA kernels: keep model.fit's
        # jit_compile="auto" from compiling this layer on GPU. On JAX and
        # PyTorch the layer sees char ids only (text stays in the preprocessor).
        self.supports_jit = keras.config.backend() != "tensorflow"

        lstm = self.options["lstm"]
        self.projection_dim = lstm["projection_dim"]
        self.n_lstm_layers = lstm["n_layers"]
        self.max_chars = options_lib.max_characters(self.options)
        # An ELMoForManyLangs model (options kind "efml") reads string tokens
        # through its own lexicons; the English models read byte char ids.
        self.is_efml = options_lib.is_efml(self.options)
        if self.is_efml and token_cache_size:
            raise ValueError(
                "ElmoLayer: the token cache is not available for ELMoForManyLangs models."
            )
        # The biLM keeps float32 under any mixed-precision policy: the LSTM
        # state and the clipping thresholds are not safe in float16.
        encoder_class = EfmlTokenEncoder if self.is_efml else CharCNNTokenEncoder
        encoder_kwargs = {} if self.is_efml else {"matmul_dtype": matmul_dtype}
        self.token_encoder = encoder_class(
            self.options, name="token_encoder", dtype="float32", **encoder_kwargs
        )
        self.bilm = BidirectionalLM.from_options(
            self.options,
            stateful=self.stateful,
            state_rows=self._resolved_state_rows(),
            matmul_dtype=matmul_dtype,
            name="bilm",
            dtype="float32",
        )
        self.mixes = [
            ScalarMix(
                self.n_lstm_layers + 1,
                do_layer_norm=self.do_layer_norm,
                l2_coef=self.l2_coef,
                use_top_only=self.use_top_only,
                name=f"scalar_mix_{k}",
                dtype="float32",
            )
            for k in range(num_output_representations)
        ]
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="mix_dropout", dtype="float32")
        if token_cache_size and fine_tune == "all":
            raise ValueError(
                "A token cache needs a frozen token encoder: use fine_tune='mix' or 'top'."
            )
        self.token_cache_size = token_cache_size
        self.token_cache = token_cache_lib.TokenCache(
            self.projection_dim, size=token_cache_size, name="token_cache", dtype="float32"
        )
        self._apply_fine_tune()

    def _resolved_state_rows(self):
        """Rows of carried state: `state_rows`, else `max_batch_size`, else 128."""
        for rows in (self.state_rows, self.max_batch_size):
            if rows is not None:
                return rows
        return DEFAULT_STATE_ROWS

    def _apply_fine_tune(self):
        self.token_encoder.trainable = self.fine_tune == "all"
        self.bilm.trainable = self.fine_tune in ("top", "all")
        for layer, lstm in enumerate(self.bilm.lstms):
            top = layer == self.n_lstm_layers - 1
            lstm.trainable = self.fine_tune == "all" or (self.fine_tune == "top" and top)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "max_tokens_per_request" not in config and not config.get("stateful"):
            # Saved before the request limits existed: max_batch_size then
            # only sized a stateful layer's state (default 128) and a
            # stateless layer accepted any batch, as it still does.
            config["max_batch_size"] = None
        return super().from_config(config)

    # ------------------------------------------------------------------ build
    def build(self, input_shape=None):
        if self.built:  # from_original and warm_up build early; never twice
            return
        self.token_encoder.build(None if self.is_efml else (None, self.max_chars))
        self.bilm.build()
        for mix in self.mixes:
            mix.build()
        self.dropout_layer.build(None)
        self.token_cache.build()
        self.built = True

    @classmethod
    def from_original(cls, options_file, weight_file, *, progress=False, refresh=False, **kwargs):
        """Build from the published `options.json` + `weights.hdf5` pair.

        Either file may be an `http(s)://` URL, as AllenNLP accepted: it is
        downloaded once into the cache (`keras_elmo.checkpoints.download`)
        and read from there afterwards, also offline, checked against the
        SHA-256 recorded at its first download; `refresh=True` downloads it
        again. `progress=True` shows a download progress bar on stderr (off
        by default in library calls).
        """
        local = ModelSource(options_file=options_file, weight_file=weight_file)
        local = local.resolve(progress=progress, refresh=refresh)
        options_file, weight_file = local.options_file, local.weight_file
        # A file in the download cache that fails to load is named as one.
        with download.cache_entry_errors(options_file, weight_file):
            options = options_lib.load_options(options_file)
            # Names, dtypes and shapes against the options before any weight
            # is allocated (a wrong options file can ask for gigabytes).
            conversion.check_weights_file(weight_file, options)
        layer = cls(options, **kwargs)
        layer.build()
        with download.cache_entry_errors(weight_file):
            conversion.load_original_weights(weight_file, layer.token_encoder, layer.bilm)
        return layer

    @classmethod
    def from_elmoformanylangs(cls, model_dir, **kwargs):
        """Build from an ELMoForManyLangs (HIT-SCIR) model directory, without PyTorch.

        `model_dir` holds EFML's `config.json`, `char.dic`, `word.dic`,
        `token_embedder.pkl` and `encoder.pkl` (docs/many-languages.md). The
        layer computes EFML's numbers, stateless unless `stateful=True`;
        `kwargs` are ElmoLayer's arguments. It takes string tokens or raw
        sentences (the lexicons are lookup tables in the graph), not char ids.
        """
        with download.cache_entry_errors(model_dir):
            model = efml.read_model(model_dir)
        layer = cls(model.options, **kwargs)
        layer.build()
        layer.token_encoder.set_lexicons(model.char_lexicon, model.word_lexicon)
        efml.assign_weights(model, layer.token_encoder, layer.bilm)
        return layer

    @classmethod
    def from_preset(cls, preset, *, progress=False, refresh=False, **kwargs):
        """Build from a preset name (`keras_elmo.list_presets()`) or a model directory.

        "elmo-small-en" is shipped with the package; the published AllenNLP
        models are downloaded on first use into the cache and read from
        there afterwards, also offline, checked at every use against the
        SHA-256 pinned at the first download; `refresh=True` downloads them
        again on purpose (docs/models.md). `progress=True` shows a download
        progress bar on stderr (off by default in library calls). `kwargs`
        go to the constructor (e.g. `output_mode="dict"`, `fine_tune="top"`).
        """
        source = ModelSource(preset=preset)
        return cls.from_source(source, progress=progress, refresh=refresh, **kwargs)

    @classmethod
    def from_source(cls, source, *, progress=False, refresh=False, **kwargs):
        """Build from a `keras_elmo.checkpoints.model_source.ModelSource`.

        The source is resolved to local files (a preset or a URL is
        downloaded once, with a progress bar on stderr when `progress`;
        `refresh=True` downloads it again, as `from_preset`); a
        preset name or a model directory may stand for the source. `kwargs`
        go to the constructor; a `.keras` file's layer is cloned with them
        (`clone`: its weights, lexicons and token cache kept).
        """
        local = ModelSource.of(source).resolve(progress=progress, refresh=refresh)
        if local.efml_dir is not None:
            return cls.from_elmoformanylangs(local.efml_dir, **kwargs)
        if local.options_file is not None:
            return cls.from_original(local.options_file, local.weight_file, **kwargs)
        import keras

        from keras_elmo import registration

        # Every keras_elmo object the file may hold (an ElmoTokenizer too), also
        # in a worker or the command line, where `import keras_elmo` registers none.
        registration.register_keras_objects()
        loaded = keras.saving.load_model(local.keras_file, compile=False)
        return find_elmo_layer(loaded).clone(**kwargs)

    def save_original(self, options_file, weight_file):
        """Write `options.json` + `weights.hdf5` readable by bilm-tf and AllenNLP."""
        if self.is_efml:
            raise ValueError(
                "save_original writes the bilm-tf format, which has no place for an "
                "ELMoForManyLangs model's lexicons; save it as a .keras file instead."
            )
        if not self.built:
            self.build()
        with open(options_file, "w", encoding="utf-8") as f:
            json.dump(conversion.options_to_original(self.options), f, indent=1)
        conversion.save_original_weights(weight_file, self.token_encoder, self.bilm)

    # ------------------------------------------------------------------ copies
    def clone(self, *, keep_token_cache=True, **overrides):
        """A new `ElmoLayer` with this layer's config and state, `overrides` applied.

        The config is `get_config()` with `overrides` (any constructor
        argument, e.g. `output_mode="dict"`, `stateful=False`,
        `matmul_dtype="bfloat16"`), checked by the constructor. The clone
        gets copies of the weights (token encoder, biLM, initial state,
        scalar mixes), an ELMoForManyLangs model's lexicons and, with
        `keep_token_cache=True`, the token cache; every shape is checked.
        A clone with more mixes than this layer gets new ones for the rest.
        The carried state of a stateful layer is copied when the clone is
        stateful with as many rows; otherwise the clone starts from the
        initial state. Same config, same outputs, bit for bit.

        Example:

        >>> import keras_elmo
        >>> elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en")
        >>> twin = elmo.clone(output_mode="dict")
        >>> sorted(twin([["Hello", "!"]]))[:3]
        ['default', 'elmo', 'lstm_outputs1']
        """
        if not self.built:
            self.build()
        # The constructor itself (not from_config, which wraps its errors).
        config = {**self.get_config(), "dtype": self.dtype_policy, **overrides}
        clone = type(self)(**config)
        clone.build()
        if self.is_efml != clone.is_efml:
            raise ValueError("ElmoLayer.clone: the overrides change the kind of model.")
        if self.is_efml and self.token_encoder.lookup_tables:
            source = self.token_encoder
            clone.token_encoder.set_lexicons(source.char_lexicon, source.word_lexicon)
        pairs = model_weight_pairs(self, clone)
        pairs += [
            (mine, theirs)
            for src, dst in zip(self.mixes, clone.mixes)
            for mine, theirs in ((src.scalar_weights, dst.scalar_weights), (src.gamma, dst.gamma))
        ]
        same_rows = self.bilm.state_rows == clone.bilm.state_rows
        carry = self.stateful and clone.stateful and same_rows
        if carry:
            pairs += [
                (self.bilm.state_c, clone.bilm.state_c),
                (self.bilm.state_h, clone.bilm.state_h),
            ]
        assign_pairs(pairs, "ElmoLayer.clone")
        if not carry:
            clone.reset_states()  # (the initial state copied above)
        if keep_token_cache and self.token_cache.active:
            if clone.fine_tune == "all":
                raise ValueError(
                    "ElmoLayer.clone: this layer has a token cache, which needs a frozen "
                    "token encoder; clone with fine_tune='mix' or 'top', or "
                    "keep_token_cache=False."
                )
            cache = self.token_cache
            clone.token_cache.set_vocabulary(cache.vocabulary, cache.vectors.numpy())
        return clone

    # ------------------------------------------------------------- token cache
    def cache_vocabulary(self, tokens, batch_size=4096):
        """Precompute the context-free vectors of `tokens` (bilm-tf's
        `dump_token_embeddings`, AllenNLP's `vocab_to_cache`).

        Afterwards string-token inputs look their in-vocabulary tokens up and
        run the char CNN only on the others; outputs are unchanged (up to
        float rounding). Char-id inputs always use the CNN. The cache is
        saved with the model (`TokenCache`); call this again after the token
        encoder's weights change. A call with another vocabulary replaces the
        cache (functions traced before, e.g. `model.predict`'s, keep the old
        vocabulary: call it before compiling). Returns self.
        """
        if self.fine_tune == "all":
            raise ValueError(
                "A token cache needs a frozen token encoder: use fine_tune='mix' or 'top'."
            )
        if self.is_efml:
            raise ValueError(
                "ElmoLayer: the token cache is not available for ELMoForManyLangs models."
            )
        vocabulary = token_cache_lib.clean_vocabulary(tokens)
        if not self.built:
            self.build()
        vectors = token_cache_lib.encode_vocabulary(self.token_encoder, vocabulary, batch_size)
        self.token_cache.set_vocabulary(vocabulary, vectors)
        return self

    def _cached_token_vectors(self, tokens):
        """String tokens (B, T) -> (token vectors (B, T, P), mask) via the cache."""
        mask = tf.not_equal(tokens, "")
        rows = self.token_cache.lookup(tokens)
        vectors = self.token_cache.gather(rows)
        # Only distinct out-of-vocabulary tokens go through the char CNN.
        missing = tf.where(tf.logical_and(rows < 0, mask))
        unique, index = tf.unique(tf.gather_nd(tokens, missing))
        # A leading "" (encoded as zeros) keeps the batch non-empty when every
        # token is cached: the char-id ops do not accept zero tokens.
        unique = tf.concat([[""], unique], axis=0)
        encoded = self.token_encoder(characters.tokens_to_char_ids(unique, self.max_chars))
        vectors = tf.tensor_scatter_nd_update(vectors, missing, tf.gather(encoded, index + 1))
        return vectors, mask

    # ------------------------------------------------------------------ inputs
    # The text handling is keras_elmo.layers.preprocessor's (ElmoPreprocessor's
    # functions); on TensorFlow it runs inside this layer's graph.
    def _string_tokens(self, inputs, check_padding=True):
        """String inputs -> dense tokens (batch, T); None for other inputs."""
        return preprocessor_lib.string_tokens(inputs, "ElmoLayer", check_padding=check_padding)

    def _to_char_ids(self, inputs):
        """Any supported input -> int32 char ids (batch, T, max_chars)."""
        return preprocessor_lib.char_ids_of(inputs, self.max_chars, "ElmoLayer")

    def _limits(self):
        return {name: getattr(self, name) for name in preprocessor_lib.LIMIT_NAMES}

    def _check_limits(self, inputs):
        """The request limits, checked before any model work; returns the inputs."""
        return preprocessor_lib.check_limits(inputs, self._limits())

    def preprocessor(self, **overrides):
        """An `ElmoPreprocessor` for this layer (its `max_chars` and request limits).

        On JAX and PyTorch, map it over a `tf.data` pipeline of text to feed
        `fit`; `overrides` are its arguments (`tokenizer`, `sequence_length`).
        """
        return preprocessor_lib.ElmoPreprocessor.from_layer(self, **overrides)

    # ------------------------------------------------------------------ model
    def _representations(self, char_ids, initial_state=None, token_vectors=None):
        """char ids -> (list of (B, T, 2P) layers, word_emb, mask, final_state).

        `char_ids`: int32 (B, T, max_chars), a tensor of the backend.
        `token_vectors`: optional precomputed (vectors (B, T, P), mask) that
        replace the char CNN (the token cache); `char_ids` is then unused.
        Written in `keras.ops` (static shapes) for every backend; the
        sublayers run TensorFlow's kernels on the TensorFlow backend.
        """
        if token_vectors is None:
            char_ids = ops.convert_to_tensor(char_ids)
            steps, extra = self._eager_jax_padding(char_ids)
            if extra:
                char_ids = ops.pad(char_ids, [[0, 0], [0, extra], [0, 0]])
            mask = ops.any(ops.greater(char_ids, 0), axis=-1)
            tokens = self.token_encoder(char_ids)  # (B, T, P), zeros at padding
        else:
            tokens, mask = (ops.convert_to_tensor(t) for t in token_vectors)
            steps, extra = self._eager_jax_padding(tokens)
            if extra:
                tokens = ops.pad(tokens, [[0, 0], [0, extra], [0, 0]])
                mask = ops.pad(mask, [[0, 0], [0, extra]])
        if self.fine_tune != "all":
            # A frozen char CNN needs no backward pass (the tape would run one).
            tokens = ops.stop_gradient(tokens)
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        # The model always runs on <S> tokens </S>; the two boundary vectors
        # are encoded once and written at position 0 and at length + 1.
        # (Called as a layer, not via encode_unique, so that a mixed-precision
        # autocast scope of this layer never reaches the float32 weights.)
        if self.is_efml:
            boundary = self.token_encoder.boundary_vectors()
        else:
            boundary = self.token_encoder(
                ops.convert_to_tensor(characters.boundary_char_ids(self.max_chars), "int32")
            )
        boundary = ops.convert_to_tensor(boundary)
        bos, eos = boundary[0], boundary[1]
        if self.fine_tune != "all":
            bos, eos = ops.stop_gradient(bos), ops.stop_gradient(eos)
        padded = ops.pad(tokens, [[0, 0], [1, 1], [0, 0]])
        pos = ops.arange(ops.shape(padded)[1], dtype="int32")[None, :, None]
        len_ = lengths[:, None, None]
        padded = ops.where(pos == 0, bos, ops.where(pos == len_ + 1, eos, padded))
        outputs, final_state = self.bilm(
            padded, pos[..., 0] < len_[..., 0] + 2, initial_state=initial_state
        )
        # Drop the boundary positions: row i keeps positions 1..length_i.
        m = ops.cast(mask, tokens.dtype)[..., None]
        outputs = [out[:, 1:-1] * m for out in outputs]
        if self.fine_tune == "mix":
            # A frozen biLM needs no gradients: keep its activations off the tape.
            outputs = [ops.stop_gradient(out) for out in outputs]
        elif self.fine_tune == "top":
            outputs = [ops.stop_gradient(out) for out in outputs[:-1]] + outputs[-1:]
        layers = [ops.concatenate([tokens, tokens], axis=-1)] + outputs
        if extra:
            layers = [layer[:, :steps] for layer in layers]
            tokens, mask = tokens[:, :steps], mask[:, :steps]
        return layers, tokens, mask, final_state

    @staticmethod
    def _eager_jax_padding(x):
        """(T, extra positions): an eager JAX call pads T so that T + 2 (with
        the boundary tokens) is one of a few lengths (`backend_path.time_bucket`),
        reusing compiled functions; padding positions change no real output."""
        steps = x.shape[1]
        if not backend_path.eager_jax(x):
            return steps, 0
        return steps, backend_path.time_bucket(steps + 2) - 2 - steps

    def __call__(self, *args, **kwargs):
        # Keras takes only tensors and arrays as positional inputs; the README's
        # Python lists of tokens or sentences become string tensors first.
        # On JAX and PyTorch text goes through the preprocessor (TensorFlow
        # ops, eagerly) and the model gets the backend's char ids.
        prepare = self._prepare_input
        if args:
            args = (prepare(args[0]),) + args[1:]
        elif "inputs" in kwargs:
            kwargs["inputs"] = prepare(kwargs["inputs"])
        return super().__call__(*args, **kwargs)

    def _prepare_input(self, inputs):
        inputs = tokenization.python_strings_to_tensor(inputs, "ElmoLayer")
        if keras.config.backend() == "tensorflow":
            return inputs
        if self.is_efml:
            return self._efml_packed_ids(inputs)
        if isinstance(inputs, keras.KerasTensor):
            if inputs.dtype == "string":
                raise tokenization.text_in_model_error("ElmoLayer")
            return inputs
        if isinstance(inputs, tf.RaggedTensor) or tf.is_tensor(inputs):
            inputs = self.preprocessor()(inputs)  # TensorFlow tensors: text or char ids
        elif preprocessor_lib.is_text(inputs):
            inputs = self.preprocessor()(inputs)
        # Char ids of the backend: checked here, before Keras's call machinery
        # (which would rewrap a limit's InvalidArgumentError); static shapes.
        preprocessor_lib.check_char_ids_spec(
            inputs.shape, keras.backend.standardize_dtype(inputs.dtype), self.max_chars, "ElmoLayer"
        )
        preprocessor_lib.check_shape_limits(tuple(inputs.shape), self._limits())
        return inputs

    def _efml_packed_ids(self, inputs):
        """JAX, PyTorch: EFML string inputs -> the encoder's packed ids, a backend tensor.

        The lexicon lookups are TensorFlow tables, run eagerly here; the
        model (`EfmlTokenEncoder.encode_packed`) is keras.ops.
        """
        if isinstance(inputs, keras.KerasTensor):
            if inputs.dtype == "string":
                raise tokenization.text_in_model_error("ElmoLayer")
            return inputs
        if not (isinstance(inputs, tf.RaggedTensor) or preprocessor_lib.is_text(inputs)):
            # Packed ids already (a functional model's call, a tf.data batch).
            shape = tuple(getattr(inputs, "shape", ()))
            dtype = keras.backend.standardize_dtype(getattr(inputs, "dtype", "float32"))
            width = self.token_encoder.packed_width
            if len(shape) != 3 or shape[-1] != width or not keras.backend.is_int_dtype(dtype):
                raise ValueError(self._EFML_NO_CHAR_IDS)
            preprocessor_lib.check_shape_limits(shape, self._limits())
            return keras.ops.convert_to_tensor(inputs)
        tokens = self._string_tokens(self._check_limits(inputs))
        return keras.ops.convert_to_tensor(self.token_encoder.packed_ids(tokens).numpy())

    _EFML_NO_CHAR_IDS = (
        "ElmoLayer: this is an ELMoForManyLangs model; it takes string tokens (batch, T) "
        "or sentences (batch,) (on JAX and PyTorch also its packed ids, "
        "token_encoder.packed_ids). Char ids from batch_to_ids are the English models' "
        "byte ids and do not apply to its character lexicon."
    )

    def _efml_token_vectors(self, inputs):
        """ELMoForManyLangs: string inputs -> (token vectors, mask); char ids refused."""
        tokens = self._string_tokens(inputs)
        if tokens is None:
            raise ValueError(self._EFML_NO_CHAR_IDS)
        return self.token_encoder(tokens), tf.not_equal(tokens, "")

    def _model_inputs(self, inputs):
        """The inputs -> (list of layers, token vectors, mask), through `_representations`."""
        if keras.config.backend() != "tensorflow":
            # Char ids of the backend, checked in __call__ (text came through
            # the preprocessor there, or through tf.data).
            if self.is_efml:  # packed ids (EfmlTokenEncoder.packed_ids)
                token_vectors = self.token_encoder.encode_packed(inputs)
                layers, tokens, mask, _ = self._representations(None, token_vectors=token_vectors)
                return layers, tokens, mask
            layers, tokens, mask, _ = self._representations(keras.ops.cast(inputs, "int32"))
            return layers, tokens, mask
        inputs = self._check_limits(inputs)
        tokens = self._string_tokens(inputs) if self.token_cache.active else None
        if self.is_efml:
            token_vectors = self._efml_token_vectors(inputs)
        elif tokens is not None:
            token_vectors = self._cached_token_vectors(tokens)
        else:
            layers, tokens, mask, _ = self._representations(self._to_char_ids(inputs))
            return layers, tokens, mask
        layers, tokens, mask, _ = self._representations(None, token_vectors=token_vectors)
        return layers, tokens, mask

    def call(self, inputs, training=None):
        ops = keras.ops
        layers, tokens, mask = self._model_inputs(inputs)
        # Everything is float32 inside; the outputs take the compute dtype.
        m = ops.expand_dims(ops.cast(mask, tokens.dtype), -1)
        mixes = [
            self.dropout_layer(mix(layers, mask=mask), training=training) * m for mix in self.mixes
        ]
        dtype = self.compute_dtype
        if self.output_mode == "elmo":
            mixes = [ops.cast(mixed, dtype) for mixed in mixes]
            return mixes[0] if len(mixes) == 1 else mixes
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        denom = ops.expand_dims(ops.maximum(ops.cast(lengths, tokens.dtype), 1.0), -1)
        out = {
            "word_emb": tokens,
            "sequence_len": lengths,
            "default": ops.sum(mixes[0], axis=1) / denom,
        }
        for k, layer in enumerate(layers[1:]):
            out[f"lstm_outputs{k + 1}"] = layer
        out["elmo"] = mixes[0]
        for k, mixed in enumerate(mixes[1:]):
            out[f"elmo_{k + 1}"] = mixed
        return {
            key: value if key == "sequence_len" else ops.cast(value, dtype)
            for key, value in out.items()
        }

    def _token_mask(self, inputs):
        if isinstance(inputs, keras.KerasTensor):
            # Functional-API tracing needs the mask as a Keras op on the input.
            if inputs.dtype == "string":
                # Raw sentences are split inside call(); put a tokenizer layer
                # in front to get a mask in a functional model.
                return keras.ops.not_equal(inputs, "") if len(inputs.shape) == 2 else None
            return keras.ops.any(keras.ops.greater(inputs, 0), axis=-1)
        if keras.config.backend() != "tensorflow":  # char ids (see __call__)
            return keras.ops.any(keras.ops.greater(inputs, 0), axis=-1)
        tokens = self._string_tokens(inputs, check_padding=False)
        if tokens is not None:
            return tf.not_equal(tokens, "")
        return tf.reduce_any(tf.convert_to_tensor(inputs) > 0, axis=-1)

    def compute_mask(self, inputs, mask=None):
        token_mask = self._token_mask(inputs)
        if self.output_mode == "elmo":
            return (
                token_mask
                if self.num_output_representations == 1
                else [token_mask] * self.num_output_representations
            )
        masks = {key: token_mask for key in self.sequence_keys()}
        masks.update({"default": None, "sequence_len": None})
        return masks

    def sequence_keys(self):
        """The dict-output keys of per-token tensors, in output order."""
        keys = ["word_emb"] + [f"lstm_outputs{k + 1}" for k in range(self.n_lstm_layers)] + ["elmo"]
        return keys + [f"elmo_{k}" for k in range(1, self.num_output_representations)]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        steps = input_shape[1] if len(input_shape) >= 2 else None
        p2 = 2 * self.projection_dim
        if self.output_mode == "elmo":
            shape = (batch, steps, p2)
            return (
                shape
                if self.num_output_representations == 1
                else [shape] * self.num_output_representations
            )
        shapes = {key: (batch, steps, p2) for key in self.sequence_keys()}
        shapes["word_emb"] = (batch, steps, self.projection_dim)
        shapes.update({"default": (batch, p2), "sequence_len": (batch,)})
        return shapes

    def compute_output_spec(self, inputs, training=None):
        # Keras's default gives every output of compute_output_shape the
        # compute dtype; the dict's sequence_len is int32, as call returns it.
        shapes = self.compute_output_shape(inputs.shape)
        if self.output_mode == "elmo":
            return keras.tree.map_shape_structure(
                lambda shape: keras.KerasTensor(shape, dtype=self.compute_dtype), shapes
            )
        return {
            key: keras.KerasTensor(
                shape, dtype="int32" if key == "sequence_len" else self.compute_dtype
            )
            for key, shape in shapes.items()
        }

    # ------------------------------------------------------------------ state
    def reset_states(self):
        """Stateful mode: every row's carried LSTM state back to the initial state."""
        self.bilm.reset_states()

    def warm_up(self, sentences, n_streams=4):
        """Store a warm initial LSTM state computed from some text.

        The sentences (token lists) are dealt round-robin into `n_streams`
        streams and run batch after batch with the state carried over, as the
        original stateful code does; the final states are averaged over the
        streams and stored as the initial state of every later call (and of
        `reset_states`). Deterministic, saved with the model. Returns self.
        """
        sentences = [list(s) for s in sentences]
        rounds = len(sentences) // n_streams
        if rounds < 1:
            raise ValueError(f"warm_up needs at least n_streams={n_streams} sentences.")
        if not self.built:
            self.build()
        lstm = self.options["lstm"]
        shape = (self.n_lstm_layers, 2, n_streams)
        state = (tf.zeros(shape + (lstm["dim"],)), tf.zeros(shape + (self.projection_dim,)))
        for r in range(rounds):
            batch = sentences[r * n_streams : (r + 1) * n_streams]
            if self.is_efml:
                longest = max(len(s) for s in batch)
                tokens = tf.constant([list(s) + [""] * (longest - len(s)) for s in batch])
                if keras.config.backend() == "tensorflow":
                    vectors = self._efml_token_vectors(tokens)
                else:
                    packed = self.token_encoder.packed_ids(tokens).numpy()
                    vectors = self.token_encoder.encode_packed(packed)
                _, _, _, state = self._representations(
                    None, initial_state=state, token_vectors=vectors
                )
                continue
            char_ids = tf.constant(characters.batch_to_ids(batch, self.max_chars))
            _, _, _, state = self._representations(char_ids, initial_state=state)
        self.bilm.initial_c.assign(tf.reduce_mean(state[0], axis=2))
        self.bilm.initial_h.assign(tf.reduce_mean(state[1], axis=2))
        self.reset_states()
        return self

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "options": self.options,
                "num_output_representations": self.num_output_representations,
                "do_layer_norm": self.do_layer_norm,
                "l2_coef": self.l2_coef,
                "use_top_only": self.use_top_only,
                "dropout": self.dropout,
                "fine_tune": self.fine_tune,
                "stateful": self.stateful,
                "max_batch_size": self.max_batch_size,
                "output_mode": self.output_mode,
                "token_cache_size": self.token_cache_size,
                "matmul_dtype": self.matmul_dtype,
                "max_tokens_per_sentence": self.max_tokens_per_sentence,
                "max_tokens_per_request": self.max_tokens_per_request,
                "state_rows": self.state_rows,
            }
        )
        return config


def find_elmo_layer(layer_or_model):
    """The single `ElmoLayer` of a layer or (nested) Keras model; `InputError` otherwise."""
    if isinstance(layer_or_model, ElmoLayer):
        return layer_or_model
    found, seen = [], set()

    def walk(obj):
        for sub in getattr(obj, "layers", None) or ():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, ElmoLayer):
                found.append(sub)
            else:
                walk(sub)

    walk(layer_or_model)
    what = type(layer_or_model).__name__
    if not found:
        raise InputError(
            f"expected an ElmoLayer or a Keras model containing one; got a {what} "
            "with no ElmoLayer inside."
        )
    if len(found) > 1:
        names = ", ".join(layer.name for layer in found)
        raise InputError(
            f"the {what} contains {len(found)} ElmoLayers ({names}); pass one of them directly."
        )
    return found[0]


def model_weight_pairs(source, target):
    """(source variable, target variable) for the token encoder, the LSTMs and
    the initial state of two models with one architecture.

    `source` and `target` are `ElmoLayer`s or `BiLMTrainer`s (anything with a
    built `token_encoder` and `bilm`); the carried state of a stateful biLM
    is not included.
    """
    mine, theirs = source.token_encoder.weights, target.token_encoder.weights
    if len(mine) != len(theirs) or len(source.bilm.lstms) != len(target.bilm.lstms):
        raise ValueError("the two models have different architectures (weight counts differ).")
    pairs = list(zip(mine, theirs))
    for src, dst in zip(source.bilm.lstms, target.bilm.lstms):
        if len(src.weights) != len(dst.weights):
            raise ValueError("the two models have different LSTM weights.")
        pairs += list(zip(src.weights, dst.weights))
    pairs += [
        (source.bilm.initial_c, target.bilm.initial_c),
        (source.bilm.initial_h, target.bilm.initial_h),
    ]
    return pairs


def assign_pairs(pairs, who):
    """Assign each (source, target) variable pair, every shape checked first."""
    for src, dst in pairs:
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(
                f"{who}: variable {src.path} has shape {tuple(src.shape)}, expected "
                f"{tuple(dst.shape)}."
            )
    for src, dst in pairs:
        dst.assign(src.value)
