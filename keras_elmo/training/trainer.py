"""Training a biLM: the objective, `model.fit` integration, perplexity and export.

The model is the same `CharCNNTokenEncoder` + `BidirectionalLM` that
`ElmoLayer` runs, plus one softmax (W: V x P, b: V) shared by both
directions, as in bilm-tf. For a sentence `<S> w1 .. wn </S>` the top
layer's forward half at position t predicts token t+1 and its backward half
at position t predicts token t-1; targets outside the sentence are ignored.

Training loss: sampled softmax with a log-uniform (Zipfian) candidate sampler
(the vocabulary is sorted by falling frequency). The negatives are drawn
with a stateless RNG seeded by (seed, optimizer step), and dropout uses
stateless masks seeded the same way, so a run is deterministic and resuming
from a checkpoint continues the exact same loss curve. Evaluation and
perplexity use the full softmax.

Differences from bilm-tf, on purpose:
- We train sentence by sentence, each sentence starting from a fresh (zero)
  LSTM state, which is what keras_elmo does by default at inference; bilm-tf
  streams the text in fixed-length windows with the state carried over
  (truncated BPTT). Sentences longer than `max_len` tokens are cut into
  pieces that are trained independently.
- Dropout is applied to the input of the first LSTM layer (the token
  vectors) and to the output of the top layer (before the softmax), not
  between LSTM layers: `BidirectionalLM` runs its stack in one call.
- Sampled negatives are drawn with replacement; expected counts are exact
  for that scheme (K * P(k)).
"""

import math

import keras
import tensorflow as tf

from keras_elmo import options as options_lib
from keras_elmo.errors import require_tensorflow
from keras_elmo.layers.bilm import BidirectionalLM
from keras_elmo.layers.token_encoder import CharCNNTokenEncoder
from keras_elmo.training import data as data_lib
from keras_elmo.training import sampler


@keras.saving.register_keras_serializable(package="keras_elmo")
class SharedSoftmax(keras.layers.Layer):
    """The output softmax shared by both directions: W (V, P), b (V,)."""

    def __init__(self, vocab_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.dim = dim

    def build(self, input_shape=None):
        self.w = self.add_weight(
            name="w",
            shape=(self.vocab_size, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(self.dim)),
        )
        self.b = self.add_weight(name="b", shape=(self.vocab_size,), initializer="zeros")
        self.built = True

    def call(self, h):
        return tf.matmul(h, self.w, transpose_b=True) + self.b

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "dim": self.dim})
        return config


def lm_targets(word_ids):
    """Forward/backward targets for word ids (B, T) with -1 padding.

    Forward at t predicts t+1, backward at t predicts t-1; -1 = no target.
    """
    pad = tf.fill([tf.shape(word_ids)[0], 1], tf.constant(-1, word_ids.dtype))
    forward = tf.concat([word_ids[:, 1:], pad], axis=1)
    backward = tf.concat([pad, word_ids[:, :-1]], axis=1)
    valid = word_ids >= 0
    forward = tf.where(valid, forward, -1)
    backward = tf.where(valid, backward, -1)
    return forward, backward


@keras.saving.register_keras_serializable(package="keras_elmo")
class BiLMTrainer(keras.Model):
    """char ids + word ids -> the biLM loss; trains under `model.fit`.

    Inputs (dicts as made by `keras_elmo.training.data.make_dataset`): `char_ids`
    (B, T, max_chars) of `<S> w1 .. wn </S>` and `word_ids` (B, T), -1 padding.

    Args:
        options: model options (the published `options.json` layout).
        vocab_size: V, rows of the softmax.
        n_negative: negatives per step for the sampled softmax (0 = full softmax).
        dropout: dropout rate on the LSTM input and on the top output.
        seed: seeds the sampler and the dropout masks (with the optimizer step).
    """

    def __init__(self, options, vocab_size, n_negative=512, dropout=0.1, seed=0, **kwargs):
        require_tensorflow(
            "biLM training (BiLMTrainer, keras-elmo train)",
            "fine-tune a pretrained model: ElmoLayer(fine_tune='all') in model.fit",
        )
        super().__init__(**kwargs)
        self.options = options_lib.validate_options(options)
        if not isinstance(vocab_size, int) or vocab_size <= len(data_lib.SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must be an integer > 3, got {vocab_size!r}.")
        if not isinstance(n_negative, int) or n_negative < 0:
            raise ValueError(f"n_negative must be a non-negative integer, got {n_negative!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.vocab_size = vocab_size
        self.n_negative = n_negative
        self.dropout = float(dropout)
        self.seed = int(seed)
        lstm = self.options["lstm"]
        self.projection_dim = lstm["projection_dim"]
        self.max_chars = self.options["char_cnn"]["max_characters_per_token"]
        self.token_encoder = CharCNNTokenEncoder(self.options, name="token_encoder")
        self.bilm = BidirectionalLM.from_options(self.options, name="bilm")
        self.softmax = SharedSoftmax(vocab_size, lstm["projection_dim"], name="softmax")
        self.token_encoder.build((None, self.max_chars))
        self.bilm.build()
        self.softmax.build()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.forward_tracker = keras.metrics.Mean(name="forward_loss")
        self.backward_tracker = keras.metrics.Mean(name="backward_loss")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.forward_tracker, self.backward_tracker]

    def _seed(self, k, step):
        return tf.stack([tf.constant(self.seed * 16 + k, tf.int64), tf.cast(step, tf.int64)])

    def _dropout(self, x, k, step, training):
        if not training or self.dropout == 0.0:
            return x
        return tf.nn.experimental.stateless_dropout(x, self.dropout, seed=self._seed(k, step))

    def top_outputs(self, char_ids, training=False, step=0):
        """char ids (B, T, C) -> (forward (B, T, P), backward (B, T, P)) of the top layer."""
        char_ids = tf.cast(char_ids, tf.int32)
        mask = tf.reduce_any(char_ids > 0, axis=-1)
        x = self.token_encoder(char_ids)
        x = self._dropout(x, 1, step, training)
        outputs, _ = self.bilm(x, mask)
        top = self._dropout(outputs[-1], 2, step, training)
        return top[..., : self.projection_dim], top[..., self.projection_dim :]

    def call(self, inputs, training=False):
        forward, backward = self.top_outputs(inputs["char_ids"], training=training)
        return tf.concat([forward, backward], axis=-1)

    def _gather(self, inputs, training, step):
        word_ids = tf.cast(inputs["word_ids"], tf.int64)
        forward, backward = self.top_outputs(inputs["char_ids"], training=training, step=step)
        f_targets, b_targets = lm_targets(word_ids)
        f_valid, b_valid = f_targets >= 0, b_targets >= 0
        return (
            tf.boolean_mask(forward, f_valid),
            tf.boolean_mask(f_targets, f_valid),
            tf.boolean_mask(backward, b_valid),
            tf.boolean_mask(b_targets, b_valid),
        )

    def _sampled_loss(self, h, labels, step):
        if self.n_negative == 0:
            return self.full_softmax_xent(h, labels)
        labels = labels[:, None]
        sv = sampler.sampled_values(labels, self.n_negative, self.vocab_size, self._seed(0, step))
        return tf.nn.sampled_softmax_loss(
            weights=self.softmax.w,
            biases=self.softmax.b,
            labels=labels,
            inputs=h,
            num_sampled=self.n_negative,
            num_classes=self.vocab_size,
            num_true=1,
            sampled_values=sv,
            remove_accidental_hits=True,
        )

    def full_softmax_xent(self, h, labels):
        """Per-token cross entropy (nats) with the full softmax."""
        logits = self.softmax(h)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def _global_sum(self, value):
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return value
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        step = self.optimizer.iterations
        with tf.GradientTape() as tape:
            h_f, y_f, h_b, y_b = self._gather(inputs, True, step)
            loss_f = tf.reduce_sum(self._sampled_loss(h_f, y_f, step))
            loss_b = tf.reduce_sum(self._sampled_loss(h_b, y_b, step))
            n_f = tf.cast(tf.shape(y_f)[0], tf.float32)
            n_b = tf.cast(tf.shape(y_b)[0], tf.float32)
            # Global counts over replicas: the summed replica gradients are
            # then the gradient of the global mean, as on one device.
            total_f = self._global_sum(n_f)
            total_b = self._global_sum(n_b)
            # The mean over both directions of the per-token loss.
            loss = 0.5 * (loss_f / tf.maximum(total_f, 1.0) + loss_b / tf.maximum(total_b, 1.0))
        grads = tape.gradient(loss, self.trainable_variables)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            grads = self._clipped_share_of_global_gradient(grads, ctx)
        else:
            # Dense: the softmax gradient is an IndexedSlices that repeats
            # rows (a row per target and per negative), and Keras's global
            # clip norm would be its values' norm, not the gradient's.
            grads = [
                tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads
            ]
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        mean_f = self._global_sum(loss_f) / tf.maximum(total_f, 1.0)
        mean_b = self._global_sum(loss_b) / tf.maximum(total_b, 1.0)
        batch_loss = 0.5 * (mean_f + mean_b)
        self.loss_tracker.update_state(batch_loss, sample_weight=total_f)
        self.forward_tracker.update_state(mean_f, sample_weight=total_f)
        self.backward_tracker.update_state(mean_b, sample_weight=total_b)
        logs = {m.name: m.result() for m in self.metrics}
        logs["batch_loss"] = batch_loss
        logs["batch_tokens"] = total_f
        return _logs_for_workers(logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15) builds a model under a tf.distribute strategy from the
        # mean over the replicas of the first batch: that fails for this
        # model's batches, whose length differs from replica to replica (and
        # for any dict batch under MultiWorkerMirroredStrategy). Everything
        # is built in __init__ already; only the optimizer may be left.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def _clipped_share_of_global_gradient(self, grads, ctx):
        """Several replicas: clip the global gradient, as one device would.

        Keras clips each replica's gradient before it sums them over the
        replicas, which is not the clipping of the sum. So here the gradients
        are summed first, clipped like the optimizer would (same norm rule),
        and divided by the number of replicas: the optimizer then finds each
        share far below its own limit (a no-op clip) and its sum over the
        replicas gives back the clipped global gradient.
        """
        n = ctx.num_replicas_in_sync
        present = [k for k, g in enumerate(grads) if g is not None]
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[k] for k in present])
        grads = list(grads)
        for k, g in zip(present, summed):
            # Summed as sparse rows (cheap), then dense for the norm (see train_step).
            grads[k] = tf.convert_to_tensor(g)
        opt = self.optimizer
        if opt.clipnorm:
            grads = [None if g is None else tf.clip_by_norm(g, opt.clipnorm) for g in grads]
        elif opt.global_clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, opt.global_clipnorm)
        elif opt.clipvalue:
            v = opt.clipvalue
            grads = [None if g is None else tf.clip_by_value(g, -v, v) for g in grads]
        return [None if g is None else g / n for g in grads]

    def test_step(self, data):
        """Full-softmax cross entropy; `loss` = mean of the two directions."""
        inputs = data[0] if isinstance(data, tuple) else data
        h_f, y_f, h_b, y_b = self._gather(inputs, False, 0)
        loss_f = self.full_softmax_xent(h_f, y_f)
        loss_b = self.full_softmax_xent(h_b, y_b)
        # Sums over all replicas, so every replica logs the global value.
        n_f = self._global_sum(tf.cast(tf.shape(y_f)[0], tf.float32))
        n_b = self._global_sum(tf.cast(tf.shape(y_b)[0], tf.float32))
        self.forward_tracker.update_state(
            self._global_sum(tf.reduce_sum(loss_f)) / tf.maximum(n_f, 1.0), sample_weight=n_f
        )
        self.backward_tracker.update_state(
            self._global_sum(tf.reduce_sum(loss_b)) / tf.maximum(n_b, 1.0), sample_weight=n_b
        )
        mean = 0.5 * (self.forward_tracker.result() + self.backward_tracker.result())
        logs = {
            "loss": mean,
            "forward_loss": self.forward_tracker.result(),
            "backward_loss": self.backward_tracker.result(),
        }
        return _logs_for_workers(logs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "options": self.options,
                "vocab_size": self.vocab_size,
                "n_negative": self.n_negative,
                "dropout": self.dropout,
                "seed": self.seed,
            }
        )
        return config


def _logs_for_workers(logs):
    """Under MultiWorkerMirroredStrategy, each log value as shape (1,).

    Keras (3.15) averages a step's logs over the workers with a mean along
    axis 0, which fails for scalars. Every value here is computed from sums
    over all replicas, so the workers agree and that mean is the value.
    """
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {key: tf.reshape(value, [1]) for key, value in logs.items()}


# ------------------------------------------------------------------ evaluation


def perplexity(model, dataset):
    """Held-out full-softmax perplexities over a dataset of biLM batches.

    Returns a dict: forward, backward, average (exp of the mean of the two
    per-token losses, as bilm-tf reports it), tokens (targets per direction)
    and the mean losses in nats.
    """

    @tf.function(reduce_retracing=True)
    def batch_sums(inputs):
        h_f, y_f, h_b, y_b = model._gather(inputs, False, 0)
        return (
            tf.reduce_sum(tf.cast(model.full_softmax_xent(h_f, y_f), tf.float64)),
            tf.size(y_f),
            tf.reduce_sum(tf.cast(model.full_softmax_xent(h_b, y_b), tf.float64)),
            tf.size(y_b),
        )

    sf = sb = 0.0
    nf = nb = 0
    for inputs in dataset:
        a, b, c, d = batch_sums(inputs)
        sf, nf, sb, nb = sf + float(a), nf + int(b), sb + float(c), nb + int(d)
    if nf == 0:
        raise ValueError("perplexity: the dataset has no tokens.")
    lf, lb = sf / nf, sb / nb
    return {
        "forward": math.exp(lf),
        "backward": math.exp(lb),
        "average": math.exp(0.5 * (lf + lb)),
        "forward_loss": lf,
        "backward_loss": lb,
        "tokens": nf,
    }
