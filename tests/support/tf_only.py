"""Running a SavedModel in a subprocess that has TensorFlow and nothing of ours.

Used by the export tests (English and ELMoForManyLangs models).
"""

import os
import subprocess
import sys
import textwrap

# Runs in a fresh interpreter: TensorFlow only (tensorflow_text when asked).
# Lists the ops of a SavedModel's graph and of its function library. Pasted
# into the subprocess scripts below, which must not import this module.
SAVED_MODEL_OPS = textwrap.dedent("""
    def saved_model_ops(pb_path):
        from tensorflow.core.protobuf import saved_model_pb2
        sm = saved_model_pb2.SavedModel()
        with open(pb_path, "rb") as f:
            sm.ParseFromString(f.read())
        ops, functions = set(), set()
        for mg in sm.meta_graphs:
            ops.update(n.op for n in mg.graph_def.node)
            for fn in mg.graph_def.library.function:
                functions.add(fn.signature.name)
                ops.update(n.op for n in fn.node_def)
        return ops - functions  # a call of a library function shows as its name
""")


def tf_only_env(work, block_keras=True):
    """Environment for a subprocess in which keras and keras_elmo cannot be imported.

    `import tensorflow` imports parts of Keras 3 whenever it is installed, so
    "keras not in sys.modules" needs Keras made unimportable: shadow packages
    that raise ImportError come first on the path (the cwd is `work`, so the
    repository is not on it either). `tensorflow_text` itself needs Keras
    (its Keras layers subclass `tf.keras.layers.Layer` at import), so with
    `block_keras=False` only keras_elmo is shadowed.
    """
    shadow = os.path.join(work, "shadow")
    for name in ("keras", "keras_elmo") if block_keras else ("keras_elmo",):
        os.makedirs(os.path.join(shadow, name), exist_ok=True)
        with open(os.path.join(shadow, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('{name} is not available in this process')\n")
    return {**os.environ, "PYTHONPATH": shadow, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_tf_only(code, work, timeout=300, block_keras=True):
    """Run `code` after SAVED_MODEL_OPS in a fresh interpreter, in `work`, with
    the environment of `tf_only_env`; assert it succeeded and return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_OPS + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=work,
        env=tf_only_env(str(work), block_keras=block_keras),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout
