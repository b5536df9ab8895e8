"""What this machine's CPU offers: the bfloat16 probe and its one warning.

`cpu_bfloat16_units()` reads the CPU's feature flags; the layers call
`warn_if_no_bfloat16_units()` when the lower-precision path is asked for
(once per process), naming the user's line that asked.
"""

import os
import platform
import sys
import warnings


def cpu_bfloat16_units(cpuinfo="/proc/cpuinfo", machine=None):
    """Whether this CPU has bfloat16 matmul instructions: (True | False | None, why).

    x86 on Linux: the `avx512_bf16` or `amx_bf16` flag in /proc/cpuinfo
    (oneDNN's bf16 kernels need one of them; without, bf16 operands are
    converted in software and the lower-precision path runs slower than
    float32). Elsewhere (other OS or architecture) None: unknown.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return None, f"bfloat16 support of a {machine or 'unknown'} CPU is not probed"
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None
            )
    except OSError:
        flags = None
    if flags is None:
        return None, f"the CPU's feature flags could not be read ({cpuinfo})"
    found = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, "the CPU has neither AVX512_BF16 nor AMX-BF16"


_BF16_WARNED = False


def _caller_stacklevel():
    """The `warnings.warn` stacklevel, from its caller, of the first frame outside
    keras_elmo, Keras and TensorFlow: the user's line that asked for the work
    (the layer is built inside Keras's `__call__`, or in a `from_*` constructor)."""
    import keras
    import tensorflow as tf

    import keras_elmo

    roots = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in (keras_elmo, keras, tf)
    )
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(roots):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_no_bfloat16_units():
    """Once per process: the bfloat16 path was asked for on a CPU without bf16 units."""
    global _BF16_WARNED
    if _BF16_WARNED:
        return
    _BF16_WARNED = True
    has_units, why = cpu_bfloat16_units()
    if has_units is False:
        warnings.warn(
            f"keras_elmo: matmul_dtype='bfloat16' requested, but {why}: the matmuls "
            "will emulate bfloat16 and run slower than float32 (and lose precision). "
            "Use the default 'float32' on this machine.",
            RuntimeWarning,
            stacklevel=_caller_stacklevel(),
        )
