"""How long a TensorFlow Serving export takes to load and answer its first call.

Builds an ElmoLayer (default: the published full-size "original" options)
with random weights, exports it with `keras_elmo.serving.export.export_saved_model`,
then, in a fresh process that imports only TensorFlow, times
`tf.saved_model.load` and the first `serving_default` call on one sentence.
Prints one markdown table row:

    | size | export s | load s | first call s | export MB | weights MB |

Heavy at full size (~94M parameters, ~380 MB of weights): run it once.

    .venv/bin/python benchmarks/export_load.py [--size original] [--dir /tmp/elmo_export]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHILD = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
t0 = time.perf_counter()
import tensorflow as tf
t1 = time.perf_counter()
loaded = tf.saved_model.load(sys.argv[1])
t2 = time.perf_counter()
out = loaded.signatures["serving_default"](default=tf.constant(["The cat sat on the mat ."]))
out["elmo"].numpy()
t3 = time.perf_counter()
out = loaded.signatures["serving_default"](default=tf.constant(["A second , warm call ."]))
out["elmo"].numpy()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2,
                  "second_call_s": t4 - t3, "keras_loaded": "keras_elmo" in sys.modules}))
"""


def _dir_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="original", choices=("small", "medium", "original"))
    parser.add_argument(
        "--dir", default=None, help="export base dir (default: a temp dir, removed)"
    )
    args = parser.parse_args(argv)

    import numpy as np

    import keras_elmo
    from keras_elmo.serving import export

    layer = keras_elmo.ElmoLayer(keras_elmo.published_options(args.size))
    layer.build()
    weights_bytes = sum(int(np.prod(v.shape)) * 4 for v in layer.variables)
    base = args.dir or tempfile.mkdtemp(prefix="elmo_export_")
    try:
        t0 = time.perf_counter()
        path = export.export_saved_model(layer, base)
        export_s = time.perf_counter() - t0
        del layer
        size = _dir_bytes(path)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, path],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return 1
        t = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            "| size | export s | load s | first call s | second call s | export MB | weights MB |"
        )
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {args.size} | {export_s:.1f} | {t['load_s']:.2f} | {t['first_call_s']:.2f} | "
            f"{t['second_call_s']:.2f} | {size / 2**20:.1f} | {weights_bytes / 2**20:.1f} |"
        )
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
