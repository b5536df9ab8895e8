"""The bfloat16 path's hardware check: the CPU probe and its one-time warning."""

import warnings

import pytest

from keras_elmo import ElmoLayer, cpu

WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX = "processor\t: 0\nflags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize(
    "text, machine, expected",
    [
        (WITH_BF16, "x86_64", True),
        (AMX, "x86_64", True),
        (WITHOUT, "x86_64", False),
        (WITH_BF16, "aarch64", None),  # not probed off x86
        ("processor\t: 0\n", "x86_64", None),  # no flags line
    ],
)
def test_cpu_probe_reads_the_flags(tmp_path, text, machine, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    has_units, why = cpu.cpu_bfloat16_units(path, machine=machine)
    assert has_units is expected, why
    if expected is False:
        assert "AVX512_BF16" in why and "AMX" in why


def test_missing_cpuinfo_is_unknown(tmp_path):
    has_units, why = cpu.cpu_bfloat16_units(tmp_path / "absent", machine="x86_64")
    assert has_units is None and "could not be read" in why


def test_warns_once_without_bf16_units(tiny_options, monkeypatch):
    monkeypatch.setattr(cpu, "_BF16_WARNED", False)
    monkeypatch.setattr(cpu, "cpu_bfloat16_units", lambda: (False, "the CPU has neither X nor Y"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ElmoLayer(tiny_options).build()  # float32: nothing to say
        assert not caught
        ElmoLayer(tiny_options, matmul_dtype="bfloat16").build()
        ElmoLayer(tiny_options, matmul_dtype="bfloat16").build()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "neither X nor Y" in messages[0] and "float32" in messages[0]


@pytest.mark.parametrize("verdict", [True, None])
def test_no_warning_with_units_or_unknown(tiny_options, monkeypatch, verdict):
    monkeypatch.setattr(cpu, "_BF16_WARNED", False)
    monkeypatch.setattr(cpu, "cpu_bfloat16_units", lambda: (verdict, "whatever"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ElmoLayer(tiny_options, matmul_dtype="bfloat16").build()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
