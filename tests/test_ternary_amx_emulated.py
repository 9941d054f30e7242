"""The AMX-INT8 ternary kernel (csrc/kernels/ternary/matmul_amx.cpp) cannot run without AMX and the
OS's tile-data permission (the dev machines have neither). This compiles it against a scalar
emulation of the tile intrinsics it uses (tests/avx512_emu/amx_emu.h: LDTILECFG, TILELOADD,
TILESTORED, TILEZERO, TDPBSSD, TILERELEASE, faulting where the hardware would) and of its AVX-512
intrinsics (tests/avx512_emu/immintrin.h), under AddressSanitizer + UBSan, and checks it bit-exactly
against the scalar reference: T from 1 to 70 and up to 256, row and K tails, thread splits, strided
output, extremes (tests/avx512_emu/amx_driver.cpp); for T >= 2 also the product with matmul's float
epilogue fused into the tile stores (rows_amx_decode_f32), against the bits of that conversion. The real instructions are covered by the amx
C++ / pytest legs on CPUs that have AMX."""
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
def test_amx_kernel_logic_under_emulation(tmp_path):
    src = ROOT / "csrc"
    exe = tmp_path / "amx_emu"
    kernels = src / "kernels" / "ternary"
    # matmul_avx512.cpp is linked too: the AMX kernel hands the GEMV (T = 1) over to it.
    cmd = ["g++", "-std=c++17", "-O1", "-mavx2", "-mfma", "-mf16c", "-pthread",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{EMU}", f"-I{src}",
           "-DBITMAMBA_HAVE_X86_KERNELS=1", str(EMU / "amx_driver.cpp"),
           str(kernels / "matmul_amx.cpp"), str(kernels / "matmul_avx512.cpp"),
           str(kernels / "packing.cpp"), str(kernels / "matmul_scalar.cpp"),
           str(kernels / "activations.cpp"), str(src / "core" / "fp16.cpp"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-5000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-20000:]
    assert "691/691 cases match" in r.stdout, r.stdout[-5000:]
