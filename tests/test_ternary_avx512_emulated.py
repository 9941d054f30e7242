"""The AVX-512 VNNI ternary kernel, the AVX-512 VBMI base3 kernel and the AVX-512 binary kernel cannot run on CPUs without AVX-512 (like
our 2-core dev machines), nor the AVX-VNNI ternary kernel on CPUs without AVX-VNNI (AVX2-only EPYCs, Zen 4).
This compiles them against a scalar emulation of the handful of AVX-512 intrinsics they use
(tests/avx512_emu/immintrin.h) and checks it bit-exactly against the scalar reference, so its logic is
tested everywhere; the real instructions are covered by the avx512 C++/pytest legs on AVX-512 CPUs."""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from skips import NOT_APPLICABLE

ROOT = Path(__file__).resolve().parent.parent
EMU = ROOT / "tests" / "avx512_emu"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason=NOT_APPLICABLE + "the emulation builds x86-64 code")
@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_avx512_kernel_logic_under_emulation(tmp_path):
    src = ROOT / "csrc"
    exe = tmp_path / "avx512_emu"
    cmd = ["g++", "-std=c++17", "-O1", "-mavx2", "-mfma", f"-I{EMU}", f"-I{src}",
           "-DBITMAMBA_HAVE_X86_KERNELS=1", str(EMU / "driver.cpp"),
           str(src / "kernels/ternary/matmul_avx512.cpp"), str(src / "kernels/ternary/matmul_avx512vbmi.cpp"),
           str(src / "kernels/ternary/matmul_avxvnni.cpp"),
           str(src / "kernels/ternary/packing.cpp"),
           str(src / "kernels/ternary/matmul_scalar.cpp"),
           str(src / "kernels/ternary/activations.cpp"), str(src / "core/fp16.cpp"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-5000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "45/45 shapes match" in r.stdout  # 15 shapes x (avx512 decode, avxvnni decode, vbmi base3)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason=NOT_APPLICABLE + "the emulation builds x86-64 code")
@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_avx512_binary_kernel_logic_under_emulation(tmp_path):
    """The AVX-512 binary kernel (csrc/kernels/binary/matmul_avx512.cpp: byte masks straight from the
    bits, vpdpbusd) and the AVX-VNNI one (matmul_avxvnni.cpp: bits kept in place, per-lane scale
    shift) against the binary scalar kernel and an int64 reference, under AddressSanitizer +
    UBSan (tests/avx512_emu/binary_driver.cpp): row / K / token tails, GEMM tiles, thread splits,
    extremes at K = 8269."""
    src = ROOT / "csrc"
    exe = tmp_path / "avx512_binary_emu"
    cmd = ["g++", "-std=c++17", "-O1", "-mavx2", "-mfma", "-mf16c", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", f"-I{EMU}", f"-I{src}", "-DBITMAMBA_HAVE_X86_KERNELS=1",
           str(EMU / "binary_driver.cpp"), str(src / "kernels/binary/matmul_avx512.cpp"),
           str(src / "kernels/binary/matmul_avxvnni.cpp"),
           str(src / "kernels/binary/packing.cpp"), str(src / "kernels/binary/matmul_scalar.cpp"),
           str(src / "kernels/ternary/activations.cpp"), str(src / "core/fp16.cpp"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-5000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-20000:]
    assert "982/982 cases match" in r.stdout, r.stdout[-5000:]  # 491 cases x (avx512, avxvnni)
