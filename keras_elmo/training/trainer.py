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

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_elmo import options as options_lib
from keras_elmo.layers.bilm import BidirectionalLM
from keras_elmo.layers.elmo_layer import ElmoLayer
from keras_elmo.layers.token_encoder import CharCNNTokenEncoder
from keras_elmo.training import data as data_lib

SOFTMAX_FILE = "softmax.npz"
TRAINING_LOG_FILE = "training_log.json"


# ------------------------------------------------------------------ sampler


def log_uniform_probs(vocab_size):
    """P(k) = log((k + 2) / (k + 1)) / log(V + 1), k = 0..V-1 (numpy float64)."""
    k = np.arange(vocab_size, dtype=np.float64)
    return np.log((k + 2.0) / (k + 1.0)) / np.log(vocab_size + 1.0)


def log_uniform_sample(num_sampled, vocab_size, seed):
    """`num_sampled` ids drawn with replacement from the log-uniform law.

    ids = floor(exp(u * log(V + 1))) - 1 with u ~ U[0, 1) from
    `tf.random.stateless_uniform(seed=seed)`; `seed` is an int shape-(2,) tensor.
    """
    u = tf.random.stateless_uniform([num_sampled], seed=seed, dtype=tf.float64)
    ids = tf.cast(tf.floor(tf.exp(u * math.log(vocab_size + 1.0))), tf.int64) - 1
    return tf.clip_by_value(ids, 0, vocab_size - 1)


def _log_uniform_prob(ids, vocab_size):
    ids = tf.cast(ids, tf.float64)
    p = tf.math.log((ids + 2.0) / (ids + 1.0)) / math.log(vocab_size + 1.0)
    return tf.cast(p, tf.float32)


def sampled_values(labels, num_sampled, vocab_size, seed):
    """The `sampled_values` triple for `tf.nn.sampled_softmax_loss`.

    labels: int64 (N, 1). Expected counts are K * P(k) (sampling with replacement).
    """
    ids = log_uniform_sample(num_sampled, vocab_size, seed)
    true_expected = num_sampled * _log_uniform_prob(labels, vocab_size)
    sampled_expected = num_sampled * _log_uniform_prob(ids, vocab_size)
    return ids, true_expected, sampled_expected


# ------------------------------------------------------------------ model


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
        self.bilm = BidirectionalLM(
            lstm["dim"],
            lstm["projection_dim"],
            lstm["n_layers"],
            cell_clip=lstm["cell_clip"],
            proj_clip=lstm["proj_clip"],
            use_skip_connections=lstm["use_skip_connections"],
            name="bilm",
        )
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
        sv = sampled_values(labels, self.n_negative, self.vocab_size, self._seed(0, step))
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
        return logs

    def test_step(self, data):
        """Full-softmax cross entropy; `loss` = mean of the two directions."""
        inputs = data[0] if isinstance(data, tuple) else data
        h_f, y_f, h_b, y_b = self._gather(inputs, False, 0)
        loss_f = self.full_softmax_xent(h_f, y_f)
        loss_b = self.full_softmax_xent(h_b, y_b)
        n_f = tf.cast(tf.shape(y_f)[0], tf.float32)
        n_b = tf.cast(tf.shape(y_b)[0], tf.float32)
        self.forward_tracker.update_state(
            tf.reduce_sum(loss_f) / tf.maximum(n_f, 1.0), sample_weight=n_f
        )
        self.backward_tracker.update_state(
            tf.reduce_sum(loss_b) / tf.maximum(n_b, 1.0), sample_weight=n_b
        )
        mean = 0.5 * (self.forward_tracker.result() + self.backward_tracker.result())
        return {
            "loss": mean,
            "forward_loss": self.forward_tracker.result(),
            "backward_loss": self.backward_tracker.result(),
        }

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


# ------------------------------------------------------------------ export / import


def to_elmo_layer(model, **kwargs):
    """An `ElmoLayer` holding copies of the trained encoder and biLM weights."""
    layer = ElmoLayer(model.options, **kwargs)
    layer.build()
    layer.token_encoder.set_weights(model.token_encoder.get_weights())
    layer.bilm.set_weights(model.bilm.get_weights())
    return layer


def export_model(model, output_dir, vocab=None, keras_file=True, extra_log=None):
    """Write the trained model to `output_dir`.

    Files: `options.json` + `weights.hdf5` (original format, readable by
    bilm-tf / AllenNLP / `ElmoLayer.from_original`), `softmax.npz` (the LM
    softmax W, b: not part of the published format, needed for perplexity),
    `vocab.txt` when `vocab` is given, `elmo.keras` (a Keras model wrapping the
    `ElmoLayer`, char-id input) and `training_log.json` when `extra_log` is given.
    """
    os.makedirs(output_dir, exist_ok=True)
    layer = to_elmo_layer(model)
    layer.save_original(
        os.path.join(output_dir, "options.json"), os.path.join(output_dir, "weights.hdf5")
    )
    np.savez(
        os.path.join(output_dir, SOFTMAX_FILE), w=model.softmax.w.numpy(), b=model.softmax.b.numpy()
    )
    if vocab is not None:
        data_lib.write_vocab(vocab, os.path.join(output_dir, "vocab.txt"))
    if keras_file:
        inputs = keras.Input((None, model.max_chars), dtype="int32", name="char_ids")
        wrapper = keras.Model(inputs, layer(inputs), name="elmo")
        wrapper.save(os.path.join(output_dir, "elmo.keras"))
    if extra_log is not None:
        with open(os.path.join(output_dir, TRAINING_LOG_FILE), "w", encoding="utf-8") as f:
            json.dump(extra_log, f, indent=1)
    return output_dir


def load_trained(model_dir, n_negative=0):
    """Rebuild a `BiLMTrainer` from an exported directory (options, weights, softmax)."""
    options_file = os.path.join(model_dir, "options.json")
    weight_file = os.path.join(model_dir, "weights.hdf5")
    softmax_file = os.path.join(model_dir, SOFTMAX_FILE)
    if not os.path.isfile(softmax_file):
        raise FileNotFoundError(
            f"{softmax_file} not found: perplexity needs the LM softmax, which `keras-elmo train` "
            "writes next to weights.hdf5 (it is not part of the published format)."
        )
    layer = ElmoLayer.from_original(options_file, weight_file)
    soft = np.load(softmax_file)
    model = BiLMTrainer(layer.options, int(soft["w"].shape[0]), n_negative=n_negative, dropout=0.0)
    model.token_encoder.set_weights(layer.token_encoder.get_weights())
    model.bilm.set_weights(layer.bilm.get_weights())
    model.softmax.set_weights([soft["w"], soft["b"]])
    return model


# ------------------------------------------------------------------ fit helpers


class BatchLog(keras.callbacks.Callback):
    """Keeps every step's `batch_loss` and counts the target tokens seen."""

    def __init__(self, print_every=0, stream=None):
        super().__init__()
        self.losses = []
        self.tokens = 0
        self.print_every = print_every
        self.stream = stream
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.losses.append(float(logs.get("batch_loss", np.nan)))
        self.tokens += int(logs.get("batch_tokens", 0))
        if self.print_every and len(self.losses) % self.print_every == 0 and self.stream:
            elapsed = time.time() - self.start
            recent = np.mean(self.losses[-self.print_every :])
            step = int(self.model.optimizer.iterations.numpy())
            self.stream.write(
                f"step {step} loss {recent:.4f} ppl~{math.exp(min(recent, 50)):.1f} "
                f"tokens {self.tokens} tok/s {self.tokens / max(elapsed, 1e-9):.0f} "
                f"elapsed {elapsed / 60:.1f} min\n"
            )
            self.stream.flush()


class TimeLimit(keras.callbacks.Callback):
    """Stops training after `minutes` of wall clock (checked after each step)."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.start > self.seconds:
            self.model.stop_training = True


def make_optimizer(name="adam", learning_rate=1e-3, clipnorm=5.0):
    """Adam or Adagrad with global gradient-norm clipping."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm)
    if name == "adagrad":
        return keras.optimizers.Adagrad(
            learning_rate, initial_accumulator_value=1.0, global_clipnorm=clipnorm
        )
    raise ValueError(f"optimizer must be 'adam' or 'adagrad', got {name!r}.")


def backup_epoch(backup_dir):
    """The epoch BackupAndRestore will resume from (0 when there is no backup)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("epoch", 0))


def train(
    model,
    train_files,
    vocab,
    batch_size=32,
    steps_per_epoch=100,
    epochs=1,
    checkpoint_dir=None,
    max_len=50,
    shuffle_buffer=10000,
    data_seed=0,
    optimizer=None,
    callbacks=(),
    verbose=0,
):
    """Fit `model` on tokenized text files, resumable through `checkpoint_dir`.

    An epoch is `steps_per_epoch` batches of an endless, deterministic
    stream. With `checkpoint_dir`, `keras.callbacks.BackupAndRestore` saves
    the weights and optimizer state after each epoch; calling `train` again
    with the same directory resumes at the next epoch, skipping the batches
    already used, so the loss curve continues exactly.

    Returns the `BatchLog` callback (per-step losses, tokens seen).
    """
    if model.optimizer is None:
        model.compile(optimizer=optimizer or make_optimizer())
    start_epoch = backup_epoch(checkpoint_dir) if checkpoint_dir else 0
    dataset = data_lib.make_dataset(
        train_files,
        vocab,
        batch_size,
        max_len=max_len,
        shuffle_buffer=shuffle_buffer,
        seed=data_seed,
        repeat=True,
        skip_batches=start_epoch * steps_per_epoch,
        drop_remainder=True,
    )
    log = BatchLog()
    cbs = []
    if checkpoint_dir:
        cbs.append(
            keras.callbacks.BackupAndRestore(
                checkpoint_dir, save_freq="epoch", delete_checkpoint=False
            )
        )
    cbs += [log] + list(callbacks)
    model.fit(
        dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose
    )
    return log
