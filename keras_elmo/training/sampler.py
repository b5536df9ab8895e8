"""The negative sampler of the sampled softmax: log-uniform (Zipfian) ids.

The vocabulary is sorted by falling frequency, so id k has probability
log((k + 2) / (k + 1)) / log(V + 1), as in TensorFlow's log-uniform candidate
sampler. Draws are stateless (seeded by the caller with (seed, step)) so that
training is deterministic and resumes exactly.
"""

import math

import numpy as np
import tensorflow as tf


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
