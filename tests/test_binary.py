"""Binary (1-bit) projection kernels from Python (bitmamba._C.binary): the exact int32 product and the
float epilogue of docs/binary.md against numpy definitions, on every kernel set this CPU can run
(the `isa` fixture), with row / column / token tails, size-1 and empty cases, and bad inputs.

Integer results are compared exactly (numpy int64 dot). Float outputs are compared bit for bit with
the documented formula evaluated in float64 by numpy and rounded once to float32."""
from __future__ import annotations

import numpy as np
import pytest

import bitmamba
from bitmamba._native import native

C = native()
B = C.binary

# The binary kernel each kernel set must run, written out (not read from the table) so a row that
# points at the wrong kernel fails here.
EXPECTED_KERNEL = {"scalar": "scalar", "avx2": "avx2-binary", "avxvnni": "avxvnni-binary", "avx512": "avx512-binary",
                   "avx512vbmi": "avx512-binary", "amx": "avx512-binary", "neon": "neon-binary", "neondot": "neondot-binary"}


def rand_signs(rng, rows, cols):
    return np.where(rng.random((rows, cols)) < 0.5, 1, -1).astype(np.int8)


def rand_q(rng, T, cols):
    return rng.integers(-128, 128, size=(T, cols), dtype=np.int8)


def make(rng, signs):
    rows = signs.shape[0]
    alpha = rng.uniform(0.001, 0.2, size=rows).astype(np.float32)
    beta = rng.uniform(-0.05, 0.05, size=rows).astype(np.float32)
    return B.BinaryMatrix.from_signs(signs, alpha, beta), alpha, beta


def ref_acc(signs, q):
    """acc[t, r] = sum_c b[r, c] q[t, c] in int64."""
    return q.astype(np.int64) @ signs.astype(np.int64).T


def ref_y(signs, alpha, beta, q, s):
    """docs/binary.md: float32((alpha * acc + beta * S) / s), each step in float64, rounded once."""
    acc = ref_acc(signs, q).astype(np.float64)
    S = q.astype(np.int64).sum(axis=1).astype(np.float64)
    v = alpha.astype(np.float64)[None, :] * acc + beta.astype(np.float64)[None, :] * S[:, None]
    return (v / s.astype(np.float64)[:, None]).astype(np.float32)


def test_kernel_name_is_the_active_sets(isa):
    assert B.kernel_name() == EXPECTED_KERNEL[isa]
    rng = np.random.default_rng(0)
    W, _, _ = make(rng, rand_signs(rng, 8, 256))
    assert W.kernel == EXPECTED_KERNEL[isa]


ROWS = [1, 3, 4, 5, 31, 32, 33, 67, 130]
COLS = [1, 7, 8, 100, 127, 128, 129, 1000, 2049]


@pytest.mark.parametrize("T", [1, 2, 3, 5, 17])
def test_matmul_int32_exact_with_tails(isa, T):
    rng = np.random.default_rng(T)
    for rows in ROWS:
        for cols in COLS:
            signs = rand_signs(rng, rows, cols)
            W, _, _ = make(rng, signs)
            q = rand_q(rng, T, cols)
            got = W.matmul_int32(q)
            assert got.dtype == np.int32 and got.shape == (T, rows)
            np.testing.assert_array_equal(got, ref_acc(signs, q), err_msg=f"{isa} rows={rows} cols={cols} T={T}")


def test_matmul_int32_every_token_count(isa):
    rng = np.random.default_rng(40)
    signs = rand_signs(rng, 67, 1000)
    W, _, _ = make(rng, signs)
    for T in range(1, 41):
        q = rand_q(rng, T, 1000)
        np.testing.assert_array_equal(W.matmul_int32(q), ref_acc(signs, q), err_msg=f"{isa} T={T}")


def test_gemv_on_a_real_shape_and_one_dimensional_q(isa):
    rng = np.random.default_rng(1)
    signs = rand_signs(rng, 2048, 4096)  # the 1B model's out_proj
    W, _, _ = make(rng, signs)
    q = rand_q(rng, 1, 4096)[0]
    got = W.matmul_int32(q)
    assert got.shape == (2048,)
    np.testing.assert_array_equal(got, ref_acc(signs, q[None, :])[0])


@pytest.mark.parametrize("qv", [-128, 127])
@pytest.mark.parametrize("sv", [-1, 1])
def test_extremes_never_overflow(isa, qv, sv):
    K = 8192 + 77
    signs = np.full((37, K), sv, dtype=np.int8)
    rng = np.random.default_rng(2)
    W, _, _ = make(rng, signs)
    for T in (1, 5):
        got = W.matmul_int32(np.full((T, K), qv, dtype=np.int8))
        assert (got == qv * sv * K).all(), (isa, qv, sv, T)


@pytest.mark.parametrize("T", [1, 4])
def test_float_epilogue_is_bit_exact(isa, T):
    rng = np.random.default_rng(3 + T)
    for rows, cols in [(1, 1), (5, 129), (70, 333), (130, 2049)]:
        signs = rand_signs(rng, rows, cols)
        W, alpha, beta = make(rng, signs)
        q = rand_q(rng, T, cols)
        s = rng.uniform(0.5, 300.0, size=T).astype(np.float32)
        y = W.matmul_q(q, s)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, ref_y(signs, alpha, beta, q, s), err_msg=f"{isa} {rows}x{cols}")


def test_full_projection_quantizes_like_bitlinear(isa):
    rng = np.random.default_rng(5)
    rows, cols, T = 33, 300, 3
    signs = rand_signs(rng, rows, cols)
    W, alpha, beta = make(rng, signs)
    x = rng.normal(0, 2, size=(T, cols)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, size=cols).astype(np.float32)
    q, s, _ = C.ternary.quantize_activations(x, g, 1e-6)  # the activation path is BitLinear's
    np.testing.assert_array_equal(W.matmul(x, g), ref_y(signs, alpha, beta, q, s))
    np.testing.assert_array_equal(W.matmul(x[0], g), ref_y(signs, alpha, beta, q[:1], s[:1])[0])


def test_size_one_and_empty(isa):
    rng = np.random.default_rng(6)
    W, alpha, beta = make(rng, np.array([[-1]], dtype=np.int8))
    np.testing.assert_array_equal(W.matmul_int32(np.array([[-128]], dtype=np.int8)), [[128]])
    # No tokens: an empty [0, rows] result.
    signs = rand_signs(rng, 9, 50)
    W, _, _ = make(rng, signs)
    out = W.matmul_int32(np.zeros((0, 50), dtype=np.int8))
    assert out.shape == (0, 9) and out.dtype == np.int32
    assert W.matmul_q(np.zeros((0, 50), dtype=np.int8), np.zeros(0, dtype=np.float32)).shape == (0, 9)
    # No rows: an empty [T, 0] result.
    E = B.BinaryMatrix.from_signs(np.zeros((0, 50), dtype=np.int8), np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert E.matmul_int32(rand_q(rng, 3, 50)).shape == (3, 0)


def test_pack_bits_is_numpy_packbits_little_endian():
    rng = np.random.default_rng(7)
    for cols in (1, 7, 8, 9, 100, 129):
        signs = rand_signs(rng, 6, cols)
        bits = B.pack_bits(signs)
        assert bits.dtype == np.uint8 and bits.shape == (6, B.bits_row_bytes(cols)) == (6, (cols + 7) // 8)
        np.testing.assert_array_equal(bits, np.packbits(signs > 0, axis=1, bitorder="little"))
        np.testing.assert_array_equal(B.unpack_bits(bits, cols), signs)


def test_from_bits_equals_from_signs(isa):
    rng = np.random.default_rng(8)
    signs = rand_signs(rng, 37, 300)
    alpha = rng.uniform(0.01, 0.1, 37).astype(np.float32)
    beta = rng.uniform(-0.1, 0.1, 37).astype(np.float32)
    A = B.BinaryMatrix.from_signs(signs, alpha, beta)
    Wb = B.BinaryMatrix.from_bits(np.packbits(signs > 0, axis=1, bitorder="little"), 300, alpha, beta)
    np.testing.assert_array_equal(A.to_signs(), signs)
    np.testing.assert_array_equal(Wb.to_signs(), signs)
    np.testing.assert_array_equal(Wb.alpha, alpha)
    np.testing.assert_array_equal(Wb.beta, beta)
    assert (Wb.rows, Wb.cols) == (37, 300) and Wb.packed_bytes == A.packed_bytes == 40 * 3 * 16 + 2 * 37 * 4
    q = rand_q(rng, 3, 300)
    np.testing.assert_array_equal(Wb.matmul_int32(q), A.matmul_int32(q))


def test_bad_inputs_raise():
    rng = np.random.default_rng(9)
    signs = rand_signs(rng, 4, 20)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    for bad in (0, 2):
        s = signs.copy()
        s[2, 3] = bad
        with pytest.raises(ValueError, match="not a sign"):
            B.BinaryMatrix.from_signs(s, ones, zeros)
        with pytest.raises(ValueError, match="not a sign"):
            B.pack_bits(s)
    for v in (np.inf, -np.inf, np.nan):
        a = ones.copy()
        a[1] = v
        with pytest.raises(bitmamba.FormatError, match="non-finite"):
            B.BinaryMatrix.from_signs(signs, a, zeros)
        with pytest.raises(bitmamba.FormatError, match="non-finite"):
            B.BinaryMatrix.from_signs(signs, ones, a)
    with pytest.raises(ValueError, match="alpha"):
        B.BinaryMatrix.from_signs(signs, np.ones(3, np.float32), zeros)
    with pytest.raises(ValueError, match="bytes per row"):
        B.BinaryMatrix.from_bits(np.zeros((4, 2), np.uint8), 20, ones, zeros)
    with pytest.raises(ValueError, match="bytes per row"):
        B.unpack_bits(np.zeros((4, 2), np.uint8), 20)
    W = B.BinaryMatrix.from_signs(signs, ones, zeros)
    with pytest.raises(ValueError, match="21 features but the matrix has 20 columns"):
        W.matmul_int32(np.zeros((1, 21), np.int8))
    with pytest.raises(ValueError, match="one value per token"):
        W.matmul_q(np.zeros((2, 20), np.int8), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        B.BinaryMatrix.from_signs(np.ones(5, np.int8), ones, zeros)
