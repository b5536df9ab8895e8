"""Throughput of ElmoLayer with and without the token-vector cache.

The small published configuration with random weights (the speed does not
depend on the values), batches of 32 held-out Brown sentences as string
tokens. The cache holds the most frequent words of the Brown training files.
Prints tokens/s for both and the share of tokens the cache covered.

    python benchmarks/bench_token_cache.py [--brown ../shared/data/brown]
"""

import argparse
import collections
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_elmo import ElmoLayer, published_options  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples"))
import corpora  # noqa: E402


def brown_sentences(paths):
    for path in paths:
        yield from corpora.read_brown(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brown", default=str(corpora.data_root(must_exist=False) / "brown"))
    parser.add_argument("--size", default="small", choices=["small", "medium", "original"])
    parser.add_argument("--vocab-size", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=40)
    args = parser.parse_args()

    train, held = corpora.brown_files(args.brown)
    counts = collections.Counter(w for s in brown_sentences(train) for w in s)
    vocab = [w for w, _ in counts.most_common(args.vocab_size)]
    sentences = [s[: args.max_len] for s in brown_sentences(held)]
    batches = []
    for k in range(args.batches):
        rows = sentences[k * args.batch_size : (k + 1) * args.batch_size]
        width = max(len(s) for s in rows)
        batches.append(tf.constant([s + [""] * (width - len(s)) for s in rows]))
    n_tokens = sum(int(tf.reduce_sum(tf.cast(b != "", tf.int32))) for b in batches)
    in_vocab = set(vocab)
    covered = (
        sum(w.decode() in in_vocab for b in batches for w in b.numpy().ravel() if w) / n_tokens
    )

    tf.keras.utils.set_random_seed(0)
    layer = ElmoLayer(published_options(args.size))
    layer.build()
    results = {}
    for name in ("no cache", "cache"):
        if name == "cache":
            start = time.perf_counter()
            layer.cache_vocabulary(vocab)
            print(f"caching {len(vocab)} tokens took {time.perf_counter() - start:.1f} s")
        run = tf.function(
            lambda x: layer(x),
            input_signature=[tf.TensorSpec([None, None], tf.string)],
            reduce_retracing=True,
        )
        run(batches[0])  # trace
        start = time.perf_counter()
        outputs = [run(b) for b in batches]
        elapsed = time.perf_counter() - start
        results[name] = (n_tokens / elapsed, outputs)
        print(
            f"{name:9s}: {n_tokens / elapsed:8.0f} tokens/s ({elapsed:.2f} s for {n_tokens} tokens, "
            f"{args.batches} batches of {args.batch_size})"
        )
    diff = max(
        float(np.abs(a.numpy() - b.numpy()).max())
        for a, b in zip(results["no cache"][1], results["cache"][1])
    )
    print(f"cache coverage of the benchmark tokens: {covered:.1%}; max |difference| {diff:.2e}")
    print(f"speed-up: {results['cache'][0] / results['no cache'][0]:.2f}x")


if __name__ == "__main__":
    main()
