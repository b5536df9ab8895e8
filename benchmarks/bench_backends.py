"""ElmoLayer's speed on each Keras backend, against AllenNLP and the code before.

    python benchmarks/bench_backends.py --before ../keras_elmo_before
    python benchmarks/bench_backends.py --models small --rounds 2 --sentences 64   # short

One run, in alternating rounds: every round starts one fresh subprocess per
(model, backend) -- Keras picks its backend once per process -- in an order
that reverses from one round to the next, so that a slow spell of a shared
machine falls on every backend alike. Each subprocess times the same seeded
sample of Brown sentences of 10-40 tokens (`bench_elmo.make_sentences`) at
one batch size (32): token lists -> `batch_to_ids` -> the layer -> numpy,
one warm-up pass, then `--passes` timed passes (median). tokens/s counts
real tokens.

Variants:

- `tensorflow`, `jax`, `torch`: this checkout with `KERAS_BACKEND` set. The
  TensorFlow call is a `tf.function` with a dynamic (batch, time) signature
  (as bench_elmo.py); JAX's is `jax.jit` of `layer.stateless_call`, with the
  time axis padded up to a multiple of `--jax-bucket` so that it compiles
  once per bucket, not once per length (the count is reported); torch's is
  the layer called eagerly under `torch.no_grad()`.
- `allennlp`: AllenNLP's own `Elmo` (its source, built outside the
  repository by make_allennlp_ref.py; `--allennlp`, default
  `$KERAS_ELMO_SHARED/allennlp_ref`) on the same options and weights, IN THE
  torch SUBPROCESS: the same process, threads and inputs as the torch
  backend, its passes alternating with the torch backend's. Its LSTM state
  is reset before each batch (keras_elmo is stateless by default).
- `before`: the TensorFlow backend of another checkout (`--before`, e.g. a
  `git worktree add --detach ../keras_elmo_before 6c10594`), the same
  worker code with that checkout first on `PYTHONPATH`.

Agreement: every subprocess keeps the ELMo vectors of its first pass; the
table gives each variant's max abs difference from AllenNLP's (and from the
TensorFlow backend's) over real tokens.

Models: "small" is the shipped saved_models/elmo-small-en; "original" (full
size, 2x4096_512_2048cnn_2xhighway) is `--full-dir` (a folder with the
published options.json + weights.hdf5) when given or found under
$KERAS_ELMO_SHARED, else random weights of that shape written by
`ElmoLayer.save_original` (seeded). Threads: `--threads` for TensorFlow's
intra/inter-op pools, torch's intra-op pool and OMP/MKL; XLA's CPU pool has
no thread knob and uses the machine's cores (recorded).
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time

from _results import run_worker, write_table
from bench_elmo import hardware, make_sentences

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")
FULL_NAME = "elmo_2x4096_512_2048cnn_2xhighway"


def shared_dir():
    return os.environ.get("KERAS_ELMO_SHARED") or os.path.join(os.path.dirname(REPO), "shared")


def versions():
    out = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "jax", "jaxlib", "torch", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# --------------------------------------------------------------------- worker
def _set_threads(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    info = {"tensorflow": f"intra {threads}, inter {threads}"}
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.set_num_threads(threads)
        info["torch"] = (
            f"intra {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}"
        )
    if os.environ.get("KERAS_BACKEND") == "jax":
        info["jax"] = f"XLA CPU default pool ({os.cpu_count()} cores)"
    return info


def _batches(args):
    sents, source = make_sentences(args.sentences, args.seed, args.data)
    b = args.batch_size
    return [sents[i : i + b] for i in range(0, len(sents), b)], source


def _keras_call(layer, backend, bucket, counter):
    """ids (numpy) -> vectors (numpy) on `backend`, the way a user of it would run it."""
    import numpy as np

    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda ids: layer(ids),
            input_signature=[tf.TensorSpec([None, None, layer.max_chars], tf.int32)],
        )
        return lambda ids: fn(tf.constant(ids)).numpy()
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, ids):
            counter[0] += 1  # runs once per trace, i.e. per compile
            out, _ = layer.stateless_call(trainable, non_trainable, ids)
            return out

        fn = jax.jit(pure)
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def call(ids):
            t = ids.shape[1]
            padded_t = -(-t // bucket) * bucket
            ids = np.pad(ids, [(0, 0), (0, padded_t - t), (0, 0)])
            return np.asarray(fn(trainable, non_trainable, ids))[:, :t]

        return call
    import torch

    def call(ids):
        with torch.no_grad():
            out = layer(torch.from_numpy(ids))
        if not isinstance(out, torch.Tensor):  # not torch's own ops: not what is measured
            raise TypeError(f"the torch backend's layer returned a {type(out).__name__}")
        return out.numpy()

    return call


def _allennlp_call(args):
    sys.path.insert(0, args.allennlp)
    import torch
    from allennlp.modules.elmo import Elmo

    elmo = Elmo(args.options_file, args.weight_file, 1, requires_grad=False, dropout=0.0)
    elmo.eval()
    lstm = elmo._elmo_lstm._elmo_lstm

    def call(ids):
        lstm.reset_states()  # stateless, as keras_elmo's default
        with torch.no_grad():
            return elmo(torch.from_numpy(ids))["elmo_representations"][0].numpy()

    return call


def worker_write(args):
    _set_threads(args.threads)
    import keras

    import keras_elmo

    keras.utils.set_random_seed(args.seed)
    layer = keras_elmo.ElmoLayer(keras_elmo.published_options("original"))
    layer.save_original(args.options_file, args.weight_file)


def worker_run(args):
    import numpy as np

    threads = _set_threads(args.threads)
    import keras

    import keras_elmo
    from keras_elmo import batch_to_ids

    backend = keras.backend.backend()
    layer = keras_elmo.ElmoLayer.from_original(args.options_file, args.weight_file)
    counter = [0]
    variants = {args.variant: _keras_call(layer, backend, args.jax_bucket, counter)}
    if args.with_allennlp:
        variants["allennlp"] = _allennlp_call(args)
    batches, _ = _batches(args)
    ids = [batch_to_ids(batch, layer.max_chars).astype("int32") for batch in batches]
    n_tokens = sum(len(s) for batch in batches for s in batch)
    first, errors = {}, {}
    for name, call in list(variants.items()):  # warm-up: traces, compiles, first touch
        try:
            first[name] = [call(x) for x in ids]
        except Exception as err:  # reported in the table, the other variant still runs
            errors[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
            del variants[name]
    compiles_after_warmup = counter[0]

    def one_pass(call):
        t, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            call(batch_to_ids(batch, layer.max_chars).astype("int32"))
        return time.perf_counter() - t, time.process_time() - cpu

    times = {name: [] for name in variants}
    cpu_times = {name: [] for name in variants}
    for _ in range(args.passes):
        for name, call in variants.items():  # alternating, same process
            wall, cpu = one_pass(call)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    np.savez(
        args.vectors_out,
        **{
            f"{name}_{k}": np.where((x > 0).any(-1)[..., None], out, 0.0)
            for name, outs in first.items()
            for k, (x, out) in enumerate(zip(ids, outs))
        },
    )
    result = {
        "variant": args.variant,
        "backend": backend,
        "keras_elmo_file": keras_elmo.__file__,
        "threads": threads,
        "tokens": n_tokens,
        "pass_s": times,
        "pass_cpu_s": cpu_times,
        "tokens_per_s": {name: n_tokens / statistics.median(t) for name, t in times.items()},
        "tokens_per_cpu_s": {
            name: n_tokens / statistics.median(t) for name, t in cpu_times.items()
        },
        "errors": errors,
    }
    if backend == "jax":
        result["jax_compiles"] = {"warm_up": compiles_after_warmup, "total": counter[0]}
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------- driver
def _sub(argv, env):
    """Run this script as a worker; its RESULT line (None for the weight writer)."""
    stdout = run_worker(__file__, argv, env)
    found = [line[7:] for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(found[-1]) if found else None


def _env(backend, pythonpath, threads):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=pythonpath)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _model_files(args, weights_dir):
    files = {
        "small": (
            os.path.join(REPO, "saved_models", "elmo-small-en", "options.json"),
            os.path.join(REPO, "saved_models", "elmo-small-en", "weights.hdf5"),
            "shipped saved_models/elmo-small-en (trained weights)",
        )
    }
    full_dir = args.full_dir or os.path.join(shared_dir(), FULL_NAME)
    opt, w = (os.path.join(full_dir, f) for f in ("options.json", "weights.hdf5"))
    if os.path.exists(opt) and os.path.exists(w):
        files["original"] = (opt, w, f"published {FULL_NAME} ({full_dir})")
    else:
        opt = os.path.join(weights_dir, "original_options.json")
        w = os.path.join(weights_dir, "original_weights.hdf5")
        if not (os.path.exists(opt) and os.path.exists(w)):
            _sub(
                ["--worker", "write", "--options-file", opt, "--weight-file", w]
                + ["--threads", str(args.threads), "--seed", str(args.seed)],
                _env("tensorflow", REPO, args.threads),
            )
        files["original"] = (
            opt,
            w,
            f"random weights of the {FULL_NAME} shape, written by ElmoLayer.save_original (seed {args.seed})",
        )
    return files


def agreement_of(weights_dir, model, variants):
    """Max abs differences between the variants' first-pass vectors (real tokens only)."""
    import numpy as np

    loaded = {}  # variant -> {batch index: vectors}
    for variant in variants:
        path = os.path.join(weights_dir, f"vectors_{model}_{variant}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                for key in z.files:
                    name, k = key.rsplit("_", 1)
                    loaded.setdefault(name, {})[int(k)] = z[key]

    def diff(a, b):
        if a not in loaded or b not in loaded:
            return None
        return float(max(np.abs(loaded[a][k] - loaded[b][k]).max() for k in loaded[a]))

    out = {
        v: {"vs_allennlp": diff(v, "allennlp"), "vs_tensorflow": diff(v, "tensorflow")}
        for v in loaded
    }
    values = [np.abs(x).max() for outs in loaded.values() for x in outs.values()]
    out["max_abs_value"] = float(max(values)) if values else None
    return out


def _sci(x):
    return "-" if x is None else f"{x:.1e}"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="original,small", help="original (full size), small")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per subprocess")
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jax-bucket", type=int, default=8, help="JAX: pad the time axis to a multiple"
    )
    parser.add_argument("--data", default=None, help="Brown corpus folder")
    parser.add_argument("--before", default=None, help="checkout of the code before (TF A/B)")
    parser.add_argument(
        "--allennlp",
        default=None,
        help="folder made by make_allennlp_ref.py (default $KERAS_ELMO_SHARED/allennlp_ref; "
        "'none' to skip)",
    )
    parser.add_argument(
        "--full-dir", default=None, help="folder with the published full-size files"
    )
    parser.add_argument("--weights-dir", default=None, help="where random full-size weights go")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "bench_backends_cpu.md"))
    # internal
    parser.add_argument("--worker", choices=("write", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--with-allennlp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options-file", help=argparse.SUPPRESS)
    parser.add_argument("--weight-file", help=argparse.SUPPRESS)
    parser.add_argument("--vectors-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "write":
        return worker_write(args)
    if args.worker == "run":
        return worker_run(args)

    allennlp = args.allennlp or os.path.join(shared_dir(), "allennlp_ref")
    if allennlp == "none":
        allennlp = None
    elif not os.path.isfile(os.path.join(allennlp, "allennlp", "modules", "elmo.py")):
        parser.error(f"no AllenNLP reference at {allennlp}: build it with make_allennlp_ref.py")
    if args.before and not os.path.isdir(os.path.join(args.before, "keras_elmo")):
        parser.error(f"--before {args.before}: no keras_elmo package there")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.before:
        variants.append("before")
    weights_dir = args.weights_dir or tempfile.mkdtemp(prefix="keras_elmo_backends_")
    os.makedirs(weights_dir, exist_ok=True)
    files = _model_files(args, weights_dir)
    common = [
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--sentences",
        str(args.sentences),
        "--batch-size",
        str(args.batch_size),
        "--passes",
        str(args.passes),
        "--jax-bucket",
        str(args.jax_bucket),
    ] + (["--data", args.data] if args.data else [])
    _, text_source = make_sentences(args.sentences, args.seed, args.data)
    runs = {m: {} for m in models}  # model -> variant -> [tokens/s per round]
    cpu_runs = {m: {} for m in models}  # model -> variant -> [tokens per CPU-second]
    extra = {m: {} for m in models}
    failed = {m: {} for m in models}  # model -> variant -> its error
    for rnd in range(args.rounds):
        order = variants if rnd % 2 == 0 else variants[::-1]
        for model in models:
            opt, w, _ = files[model]
            for variant in order:
                backend = "tensorflow" if variant == "before" else variant
                path = args.before if variant == "before" else REPO
                vec = os.path.join(weights_dir, f"vectors_{model}_{variant}.npz")
                argv_ = ["--worker", "run", "--variant", variant, "--options-file", opt]
                argv_ += ["--weight-file", w, "--vectors-out", vec] + common
                if variant == "torch" and allennlp:
                    argv_ += ["--with-allennlp", "--allennlp", allennlp]
                res = _sub(argv_, _env(backend, path, args.threads))
                for name, error in res["errors"].items():
                    failed[model][name] = error
                    print(f"# round {rnd + 1} {model} {name} failed: {error}", file=sys.stderr)
                for name, rate in res["tokens_per_s"].items():
                    runs[model].setdefault(name, []).append(rate)
                    cpu_runs[model].setdefault(name, []).append(res["tokens_per_cpu_s"][name])
                    print(
                        f"# round {rnd + 1} {model} {name}: {rate:.0f} tokens/s",
                        file=sys.stderr,
                        flush=True,
                    )
                extra[model][variant] = {
                    k: res[k] for k in ("threads", "keras_elmo_file", "jax_compiles") if k in res
                }

    agreement = {m: agreement_of(weights_dir, m, variants) for m in models}
    ver = versions()
    med = {m: {v: statistics.median(r) for v, r in runs[m].items()} for m in models}
    cpu_med = {m: {v: statistics.median(r) for v, r in cpu_runs[m].items()} for m in models}
    lines = [
        "### bench_backends: CPU",
        "",
        f"- hardware: {hardware()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()),
        f"- threads: {args.threads} (TensorFlow intra/inter-op, torch intra-op, OMP/MKL); "
        "JAX: XLA's CPU pool, all cores",
        f"- text: {args.sentences} {text_source}; batch {args.batch_size}; "
        f"{args.rounds} alternating rounds x {args.passes} timed passes after 1 warm-up "
        "(median of the passes per round; the table gives the median over rounds)",
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/bench_backends.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
    ]
    for model in models:
        lines += ["", f"- {model}: {files[model][2]}"]
    lines += [
        "",
        "| model | variant | tokens/s (median) | per round | tokens per CPU-s | ratio: tokens/s, per CPU-s | max abs diff vs AllenNLP | vs TF backend |",
        "|---|---|---:|---|---:|---|---:|---:|",
    ]
    pairs = {"torch": "allennlp", "jax": "tensorflow", "tensorflow": "before"}
    for model in models:
        m, c = med[model], cpu_med[model]
        for variant, rate in m.items():
            base = pairs.get(variant)
            ratio = (
                f"{_ratio(rate, m[base])}, {_ratio(c[variant], c[base])} vs {base}"
                if base in m
                else "-"
            )
            agr = agreement[model].get(variant, {})
            lines.append(
                f"| {model} | {variant} | {rate:.0f} | "
                + " / ".join(f"{x:.0f}" for x in runs[model][variant])
                + f" | {c[variant]:.0f} | {ratio} | "
                f"{_sci(agr.get('vs_allennlp'))} | {_sci(agr.get('vs_tensorflow'))} |"
            )
        for variant, error in failed[model].items():
            if variant not in m:
                lines.append(f"| {model} | {variant} | failed: {error} | | | | | |")
    jax_compiles = {m: extra[m].get("jax", {}).get("jax_compiles") for m in models}
    if any(jax_compiles.values()):
        lines += [
            "",
            f"JAX compiles per subprocess (time axis padded to a multiple of {args.jax_bucket}): "
            + ", ".join(f"{m} {c}" for m, c in jax_compiles.items() if c),
        ]
    write_table(lines, args.output)
    with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(
            {
                "hardware": hardware(),
                "versions": ver,
                "args": vars(args),
                "models": {m: files[m][2] for m in models},
                "tokens_per_s": runs,
                "tokens_per_cpu_s": cpu_runs,
                "median": med,
                "agreement": agreement,
                "workers": extra,
                "failed": failed,
            },
            f,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
