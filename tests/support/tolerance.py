"""The one tolerance rule of the tests (docs/layout.md, "Tests", has the measurements).

- The same computation run twice in one process, on the same path (eager,
  a traced function, a loaded model) and the same batch: bitwise
  (`np.testing.assert_array_equal`).
- Across batchings (alone vs in a batch, another padding), execution paths
  (eager, `predict`, a traced graph, a saved and reloaded model), processes
  and machines: `assert_same_up_to_path`, i.e.
  |actual - expected| <= PATH_ATOL + PATH_RTOL * |expected|, a float32 bound
  that scales with the values. Each path may pick other kernels (oneDNN or
  Eigen, AVX-512 or AVX2) and sum in another order; the error is a few
  float32 roundings of the values' size, carried through the LSTM steps.
- Claims about the originals stay as the originals check them: the bilm-tf
  fixture at 1e-6 absolute, rtol 0 (support/bilm_fixture.py's `allclose`),
  ELMoForManyLangs at its ATOL (support/efml_fixture.py).
- Other quantities keep the bound their test states and explains: gradients,
  training losses over many steps, reduced precision (float16, bfloat16).
"""

import numpy as np

# Set from benchmarks/path_tolerance.py's worst cases with a margin (docs/layout.md).
PATH_ATOL = 1e-5
PATH_RTOL = 1e-5


def flat_arrays(outputs):
    """Outputs (tensor, list, tuple or dict) -> list of numpy arrays, in a fixed order.

    A list of Python numbers (JSON from another process) is one array; a
    list or tuple of arrays or tensors is a structure."""
    if isinstance(outputs, dict):
        return [a for key in sorted(outputs) for a in flat_arrays(outputs[key])]
    if isinstance(outputs, (list, tuple)) and not _numbers(outputs):
        return [a for item in outputs for a in flat_arrays(item)]
    return [np.asarray(outputs)]


def _numbers(value):
    """Python numbers, or (nested) lists of them: one array, not a structure."""
    if isinstance(value, (list, tuple)):
        return all(_numbers(item) for item in value)
    return isinstance(value, (int, float, bool))


def assert_same_up_to_path(actual, expected, err_msg=""):
    """`actual` equals `expected` up to the difference of two execution paths.

    Both may be arrays, tensors, or (nested) lists, tuples or dicts of them;
    float arrays are compared to PATH_ATOL + PATH_RTOL * |expected|, others
    exactly (ids, lengths, masks).
    """
    got, want = flat_arrays(actual), flat_arrays(expected)
    assert len(got) == len(want), f"{err_msg}: {len(got)} arrays vs {len(want)}"
    for k, (a, b) in enumerate(zip(got, want)):
        what = f"{err_msg}[{k}]" if len(got) > 1 else err_msg
        assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            np.testing.assert_allclose(
                a.astype("float64"),
                b.astype("float64"),
                atol=PATH_ATOL,
                rtol=PATH_RTOL,
                err_msg=what,
            )
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)
