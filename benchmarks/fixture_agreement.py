"""How close ElmoLayer comes to the bilm-tf fixture on a given device.

    python benchmarks/fixture_agreement.py                     # every visible device
    python benchmarks/fixture_agreement.py --devices GPU:0 --tf32 both

Replays the fixture the way bilm-tf produced it (three streams of ten
batches, the LSTM state carried between batches: `stateful=True`) and prints
the largest absolute difference from the expected top-layer vectors, with
the LSTMs in each weight layout (batch-major, which the fixture's size uses,
and feature-major, which the published full size uses), on each device
asked for.

On Ampere and newer NVIDIA GPUs TensorFlow runs float32 matmuls and
convolutions in TensorFloat-32 unless told otherwise
(`tf.config.experimental.enable_tensor_float_32_execution(False)`), which
rounds their inputs to a 10-bit mantissa; `--tf32 both` measures the layer
with TF32 allowed and with it disabled. The setting is process-wide, which
is why keras_elmo leaves it to the user. Rows with TF32 allowed are held to
TF32_TOLERANCE (its 10-bit mantissa), the others to the fixture's 1e-6; the
exit status is 1 when a row misses its bound.

Fixture: tests/fixtures/bilm-tf in the repository (read with the tests' own
loader, tests/support/bilm_fixture.py) or --fixtures.
"""

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.bilm_fixture import FIXTURE_DIR, load_fixture  # noqa: E402

FIXTURE_TOLERANCE = 1e-6
TF32_TOLERANCE = 5e-3


def worst_difference(fixture_dir, sentences, expected, device, feature_major):
    import numpy as np
    import tensorflow as tf

    from keras_elmo import ElmoLayer, batch_to_ids

    with tf.device(device):
        layer = ElmoLayer.from_original(
            fixture_dir / "options.json",
            fixture_dir / "lm_weights.hdf5",
            stateful=True,
            output_mode="dict",
        )
        layouts = {lstm.feature_major for lstm in layer.bilm.lstms}
        if layouts != {feature_major}:
            raise SystemExit(
                f"LSTM layout not applied: wanted feature_major={feature_major}, "
                f"got {sorted(layouts)}"
            )
        worst = 0.0
        for i in range(10):
            batch = [sentences[k][i].split() for k in range(3)]
            top = layer(batch_to_ids(batch))["lstm_outputs2"]
            placed = top.device
            top = top.numpy()
            for k in range(3):
                got = top[k, : len(batch[k])]
                if got.shape != expected[k][i].shape:
                    raise SystemExit(f"shape mismatch: {got.shape} vs {expected[k][i].shape}")
                worst = max(worst, float(np.abs(got - expected[k][i]).max()))
    return worst, placed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", default=str(FIXTURE_DIR))
    parser.add_argument(
        "--devices",
        default="",
        help="comma-separated, e.g. CPU:0,GPU:0 (default: every visible CPU and GPU)",
    )
    parser.add_argument(
        "--tf32",
        choices=("default", "off", "both"),
        default="both",
        help="TensorFloat-32 on GPUs: TensorFlow's default (allowed), off, or both",
    )
    args = parser.parse_args(argv)

    fixture_dir = pathlib.Path(args.fixtures)
    if not (fixture_dir / "options.json").is_file():
        parser.error(f"no bilm-tf fixture at {fixture_dir}")
    sys.path.insert(0, str(REPO))
    import tensorflow as tf

    from keras_elmo.layers import lstm as lstm_lib

    devices = [d.strip().lstrip("/").upper() for d in args.devices.split(",") if d.strip()] or [
        d.name.replace("/physical_device:", "")
        for d in tf.config.list_physical_devices()
        if d.device_type in ("CPU", "GPU")
    ]
    sentences, expected = load_fixture(fixture_dir)
    default_min = lstm_lib.FEATURE_MAJOR_MIN_RECURRENT
    settings = {"default": [True], "off": [False], "both": [True, False]}[args.tf32]
    print(f"TensorFlow {tf.__version__}; fixture {fixture_dir}")
    print("| device | TF32 allowed | LSTM layout | max abs difference | bound | within |")
    print("|---|---|---|---:|---:|---|")
    failed = False
    tf32_before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        for device in devices:
            for tf32 in settings if device.startswith("GPU") else [None]:
                if tf32 is not None:
                    tf.config.experimental.enable_tensor_float_32_execution(tf32)
                bound = TF32_TOLERANCE if tf32 else FIXTURE_TOLERANCE
                for layout, feature_major in (("batch-major", False), ("feature-major", True)):
                    # Either layout whatever the model's size: a threshold of 0
                    # makes every LSTM feature-major, an unreachable one none.
                    lstm_lib.FEATURE_MAJOR_MIN_RECURRENT = 0 if feature_major else 2**62
                    worst, placed = worst_difference(
                        fixture_dir, sentences, expected, "/" + device, feature_major
                    )
                    ok = worst <= bound
                    failed |= not ok
                    print(
                        f"| {placed.split('device:')[-1]} | "
                        f"{'-' if tf32 is None else ('yes' if tf32 else 'no')} | {layout} | "
                        f"{worst:.2e} | {bound:g} | {'yes' if ok else 'no'} |",
                        flush=True,
                    )
    finally:
        lstm_lib.FEATURE_MAJOR_MIN_RECURRENT = default_min
        tf.config.experimental.enable_tensor_float_32_execution(tf32_before)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
