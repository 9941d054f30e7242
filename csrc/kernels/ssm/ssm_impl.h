// The SSM kernels, written once over a small vector-operations type `VM` (vec_math_*.h) and compiled
// per kernel set (ssm_kernel_set.h): scan_scalar.cpp (width 1), scan_avx2.cpp, scan_avx512.cpp,
// scan_neon.cpp.
//
// Include this header inside an anonymous namespace of the including file (after the standard
// headers): every function here then has internal linkage, so code compiled with AVX2 flags can never
// be picked by the linker for a translation unit that must run on a plainer CPU.
//
// Requires: <cstdint>, <cstdlib>, <cstring>, <cmath>, "kernels/ssm/ssm_internal.h" included before.

// Scratch memory from malloc (no std:: containers here, see above), freed on scope exit.
struct Scratch {
  float* p = nullptr;
  explicit Scratch(std::int64_t n) {
    std::size_t bytes = static_cast<std::size_t>(n > 0 ? n : 1) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Loads/stores of the first n < VM::W lanes (tails), through a zero-padded stack buffer.
template <class VM>
inline typename VM::V load_part(const float* p, std::int64_t n) {
  alignas(64) float buf[VM::W] = {};
  for (std::int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return VM::load(buf);
}
template <class VM>
inline void store_part(float* p, typename VM::V v, std::int64_t n) {
  alignas(64) float buf[VM::W];
  VM::store(buf, v);
  for (std::int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

// ---------------------------------------------------------------------------------------------
// Copies n floats (vector moves; the per-row copies here are a few hundred bytes, where a library
// memcpy / rep movs start-up would cost more than the copy).
template <class VM>
inline void copy_floats(float* dst, const float* src, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + VM::W <= n; i += VM::W) VM::store(dst + i, VM::load(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// One vector of channels (the first n lanes when kPartial) of the width-4 conv over T tokens:
// a0..a3 slide over [conv_state rows; x rows], out[t] = act((((b + w0 a0) + w1 a1) + w2 a2) + w3 a3),
// unfused, the float order of the reference. wT: taps k at wT + k * ldw.
template <class VM, bool kPartial>
inline void conv4_window(const float* x, std::int64_t T, std::int64_t ld_x, const float* wT,
                         std::int64_t ldw, const float* bias, float* state, std::int64_t ld_state,
                         float* out, std::int64_t ld_out, bool apply_silu, std::int64_t n) {
  using V = typename VM::V;
  auto ld = [n](const float* p) { return kPartial ? load_part<VM>(p, n) : VM::load(p); };
  const V w0 = ld(wT), w1 = ld(wT + ldw), w2 = ld(wT + 2 * ldw), w3 = ld(wT + 3 * ldw), b = ld(bias);
  V a0 = ld(state), a1 = ld(state + ld_state), a2 = ld(state + 2 * ld_state);
  for (std::int64_t t = 0; t < T; ++t) {
    const V a3 = ld(x + t * ld_x);
    V acc = VM::add(b, VM::mul(w0, a0));
    acc = VM::add(acc, VM::mul(w1, a1));
    acc = VM::add(acc, VM::mul(w2, a2));
    acc = VM::add(acc, VM::mul(w3, a3));
    if (apply_silu) acc = VM::silu(acc);
    if (kPartial) store_part<VM>(out + t * ld_out, acc, n);
    else VM::store(out + t * ld_out, acc);
    a0 = a1, a1 = a2, a2 = a3;
  }
  if (kPartial) {
    store_part<VM>(state, a0, n);
    store_part<VM>(state + ld_state, a1, n);
    store_part<VM>(state + 2 * ld_state, a2, n);
  } else {
    VM::store(state, a0), VM::store(state + ld_state, a1), VM::store(state + 2 * ld_state, a2);
  }
}

// Depthwise causal conv1d, channels [c0, c1); out may be x itself. kW is the kernel width when known
// at compile time (4, the Mamba case, runs conv4_window), 0 otherwise (rows are then produced last to
// first, so out row t reads x rows t-W+1..t only, which are still unwritten).
// weight is [C, W] (channel-major, the checkpoint layout), or [W, C] (tap-major) when weight_tm:
// channel-major weights are transposed per block on the stack, tap-major ones are read in place
// (the model keeps its conv weights tap-major, so a decode step does no transposing).
template <class VM, int kW>
void conv1d_range_w(const float* x, std::int64_t T, std::int64_t ld_x, const float* weight,
                    bool weight_tm, const float* bias, int W_rt, float* conv_state, std::int64_t C,
                    float* out, std::int64_t ld_out, bool apply_silu, std::int64_t c0, std::int64_t c1) {
  using V = typename VM::V;
  const int W = kW > 0 ? kW : W_rt;
  constexpr std::int64_t kBlock = 64;  // channels per block (the transposed weights stay on stack)
  const std::int64_t S = W - 1;
  alignas(64) float wT_buf[64 * kBlock];   // [k][c], W <= 64 checked by the dispatcher
  alignas(64) float bb[kBlock];
  alignas(64) float new_state[63 * kBlock];
  for (std::int64_t cb = c0; cb < c1; cb += kBlock) {
    const std::int64_t nc = (c1 - cb < kBlock) ? c1 - cb : kBlock;
    // wT + k * ldw + c: tap k of channel cb + c.
    const float* wT = wT_buf;
    std::int64_t ldw = kBlock;
    if (weight_tm) {
      wT = weight + cb, ldw = C;
    } else {
      for (std::int64_t c = 0; c < nc; ++c) {
        const float* wc = weight + (cb + c) * W;
        for (int k = 0; k < W; ++k) wT_buf[k * kBlock + c] = wc[k];
      }
    }
    if (bias) copy_floats<VM>(bb, bias + cb, nc);
    else for (std::int64_t c = 0; c < nc; ++c) bb[c] = 0.0f;
    // Row i of xx = [state; x]: the state rows first, then x.
    auto xx_row = [&](std::int64_t i) -> const float* {
      return i < S ? conv_state + i * C + cb : x + (i - S) * ld_x + cb;
    };
    if constexpr (kW == 4) {
      // Width 4: per vector of channels, a sliding window of the last 4 input rows in registers,
      // tokens in order: every input row is loaded once, before out (which may be x itself) overwrites
      // it, and the window left at the end is the new state.
      std::int64_t c = 0;
      for (; c + VM::W <= nc; c += VM::W)
        conv4_window<VM, false>(x + cb + c, T, ld_x, wT + c, ldw, bb + c, conv_state + cb + c, C,
                                out + cb + c, ld_out, apply_silu, VM::W);
      if (c < nc)
        conv4_window<VM, true>(x + cb + c, T, ld_x, wT + c, ldw, bb + c, conv_state + cb + c, C,
                               out + cb + c, ld_out, apply_silu, nc - c);
      continue;
    }
    // The new state (last S rows of xx) is saved before out overwrites x.
    for (std::int64_t r = 0; r < S; ++r) copy_floats<VM>(new_state + r * kBlock, xx_row(T + r), nc);
    for (std::int64_t t = T - 1; t >= 0; --t) {
      float* o = out + t * ld_out + cb;
      std::int64_t c = 0;
      for (; c + VM::W <= nc; c += VM::W) {
        V acc = VM::load(bb + c);
        for (int k = 0; k < W; ++k)
          acc = VM::add(acc, VM::mul(VM::load(wT + k * ldw + c), VM::load(xx_row(t + k) + c)));
        VM::store(o + c, apply_silu ? VM::silu(acc) : acc);
      }
      if (c < nc) {
        const std::int64_t n = nc - c;
        V acc = VM::load(bb + c);
        for (int k = 0; k < W; ++k)
          acc = VM::add(acc, VM::mul(load_part<VM>(wT + k * ldw + c, n), load_part<VM>(xx_row(t + k) + c, n)));
        store_part<VM>(o + c, apply_silu ? VM::silu(acc) : acc, n);
      }
    }
    for (std::int64_t r = 0; r < S; ++r) copy_floats<VM>(conv_state + r * C + cb, new_state + r * kBlock, nc);
  }
}

template <class VM>
void conv1d_range_tm(const float* x, std::int64_t T, std::int64_t ld_x, const float* weight,
                     bool weight_tm, const float* bias, int W, float* conv_state, std::int64_t C,
                     float* out, std::int64_t ld_out, bool apply_silu, std::int64_t c0, std::int64_t c1) {
  if (W == 4)
    conv1d_range_w<VM, 4>(x, T, ld_x, weight, weight_tm, bias, W, conv_state, C, out, ld_out,
                          apply_silu, c0, c1);
  else
    conv1d_range_w<VM, 0>(x, T, ld_x, weight, weight_tm, bias, W, conv_state, C, out, ld_out,
                          apply_silu, c0, c1);
}

// ---------------------------------------------------------------------------------------------
// Gating, tokens [t0, t1).
template <class VM>
void gate_silu_rows(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                    std::int64_t t0, std::int64_t t1, std::int64_t C) {
  for (std::int64_t t = t0; t < t1; ++t) {
    float* yr = y + t * ld_y;
    const float* zr = z + t * ld_z;
    std::int64_t c = 0;
    for (; c + VM::W <= C; c += VM::W)
      VM::store(yr + c, VM::mul(VM::load(yr + c), VM::silu(VM::load(zr + c))));
    if (c < C)
      store_part<VM>(yr + c, VM::mul(load_part<VM>(yr + c, C - c), VM::silu(load_part<VM>(zr + c, C - c))),
                     C - c);
  }
}

template <class VM>
void gated_rmsnorm_rows(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                        const float* weight, std::int64_t t0, std::int64_t t1, std::int64_t C,
                        std::int64_t n_groups, float eps) {
  using V = typename VM::V;
  const std::int64_t gs = C / n_groups;
  for (std::int64_t t = t0; t < t1; ++t) {
    for (std::int64_t g = 0; g < n_groups; ++g) {
      float* yr = y + t * ld_y + g * gs;
      const float* zr = z + t * ld_z + g * gs;
      const float* wr = weight + g * gs;
      V ss = VM::zero();
      std::int64_t c = 0;
      for (; c + VM::W <= gs; c += VM::W) {
        V v = VM::mul(VM::load(yr + c), VM::silu(VM::load(zr + c)));
        VM::store(yr + c, v);
        ss = VM::fma(v, v, ss);
      }
      if (c < gs) {
        V v = VM::mul(load_part<VM>(yr + c, gs - c), VM::silu(load_part<VM>(zr + c, gs - c)));
        store_part<VM>(yr + c, v, gs - c);
        ss = VM::fma(v, v, ss);  // padded lanes are 0 * silu(0) = 0
      }
      const float inv = 1.0f / std::sqrt(VM::hsum(ss) / static_cast<float>(gs) + eps);
      const V vinv = VM::set1(inv);
      c = 0;
      for (; c + VM::W <= gs; c += VM::W)
        VM::store(yr + c, VM::mul(VM::mul(VM::load(yr + c), vinv), VM::load(wr + c)));
      for (; c < gs; ++c) yr[c] = yr[c] * inv * wr[c];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dt = softplus(dt_raw + dt_bias) and dA = exp(A dt) of one head for all T tokens. Scalar, with the
// exact exp: H values per token, a negligible share of the work, and the same bits on every path.
inline void head_dt(const ScanArgs& a, std::int64_t hd, float* dt, float* dA) {
  for (std::int64_t t = 0; t < a.T; ++t) {
    dt[t] = softplus_ref(a.dt_raw[t * a.ld_dt + hd] + a.dt_bias[hd]);
    dA[t] = exp_ref(a.A[hd] * dt[t]);
  }
}

// dt and dA of heads [h0, h1) at token t (scalar, as head_dt).
inline void head_params_row(const ScanArgs& a, std::int64_t t, std::int64_t h0, std::int64_t h1,
                            float* dt, float* dA) {
  const float* raw = a.dt_raw + t * a.ld_dt;
  for (std::int64_t hd = h0; hd < h1; ++hd) {
    dt[hd - h0] = softplus_ref(raw[hd] + a.dt_bias[hd]);
    dA[hd - h0] = exp_ref(a.A[hd] * dt[hd - h0]);
  }
}

// Sequential scan, heads [h0, h1), the recurrence token by token.
// d_state 1 (BitMamba-2): the whole state of the range is one float per channel (8 KB for 2048
// channels), so it stays in L1 and the tokens go outermost: x and y are then read and written as
// contiguous row segments. (Channels outer with tokens inner was measured 2-3x slower here: every
// token row is H*P floats apart, a power-of-two stride that defeats the prefetcher and the L1 sets.)
template <class VM>
void scan_state1_range(const ScanArgs& a, std::int64_t h0, std::int64_t h1) {
  using V = typename VM::V;
  const std::int64_t P = a.s.head_dim;
  const std::int64_t hpg = a.s.n_heads / a.s.n_groups;
  const std::int64_t nh = h1 - h0;
  Scratch buf(2 * nh);
  float* dt = buf.p;
  float* dA = buf.p + nh;
  for (std::int64_t t = 0; t < a.T; ++t) {
    head_params_row(a, t, h0, h1, dt, dA);
    const float* xr = a.x + t * a.ld_x;
    float* yr = a.y + t * a.ld_y;
    const float* Bt = a.B + t * a.ld_B;
    const float* Ct = a.C + t * a.ld_C;
    for (std::int64_t hd = h0; hd < h1; ++hd) {
      const std::int64_t g = hd / hpg;
      const V da = VM::set1(dA[hd - h0]);
      const V db = VM::set1(dt[hd - h0] * Bt[g]);
      const V cc = VM::set1(Ct[g]);
      const std::int64_t c0 = hd * P, c1 = c0 + P;
      std::int64_t c = c0;
      for (; c + VM::W <= c1; c += VM::W) {
        // h = h dA + x (dt B); y = h C + D x: unfused, the float order of the reference.
        const V xv = VM::load(xr + c);
        const V st = VM::add(VM::mul(VM::load(a.h + c), da), VM::mul(xv, db));
        VM::store(a.h + c, st);
        VM::store(yr + c, VM::add(VM::mul(st, cc), VM::mul(xv, VM::load(a.D + c))));
      }
      if (c < c1) {
        const std::int64_t n = c1 - c;
        const V xv = load_part<VM>(xr + c, n);
        const V st = VM::add(VM::mul(load_part<VM>(a.h + c, n), da), VM::mul(xv, db));
        store_part<VM>(a.h + c, st, n);
        store_part<VM>(yr + c, VM::add(VM::mul(st, cc), VM::mul(xv, load_part<VM>(a.D + c, n))), n);
      }
    }
  }
}

// conv_scan_gate (ssm.h), heads [h0, h1): the conv, scan and gate of those heads' channels, in the
// same operations as the three separate kernels.
template <class VM>
void conv_scan_gate_range(const ScanArgs& a, const ConvGateArgs& g, std::int64_t h0, std::int64_t h1) {
  const std::int64_t P = a.s.head_dim, c0 = h0 * P, c1 = h1 * P, C = a.s.n_heads * P;
  conv1d_range_tm<VM>(g.xs, a.T, g.ld_xs, g.weight, /*weight_tm=*/true, g.bias, g.W, g.conv_state, C, g.xc,
                      a.ld_x, true, c0, c1);
  scan_state1_range<VM>(a, h0, h1);
  gate_silu_rows<VM>(a.y + c0, a.ld_y, g.z + c0, g.ld_z, 0, a.T, c1 - c0);
}

// d_state > 1: per head, channels outer and tokens inner: a block of 16 state rows stays in L1 while
// a tile of 64 tokens goes by, and each load of B[t] and C[t] serves 4 rows held in registers.
template <class VM>
void scan_sequential_range(const ScanArgs& a, std::int64_t h0, std::int64_t h1) {
  using V = typename VM::V;
  const std::int64_t P = a.s.head_dim, N = a.s.d_state, T = a.T;
  const std::int64_t hpg = a.s.n_heads / a.s.n_groups;
  if (N == 1) {
    scan_state1_range<VM>(a, h0, h1);
    return;
  }
  constexpr std::int64_t kTile = 64;
  Scratch buf(2 * T + 2 * kTile * P);
  float* dt = buf.p;
  float* dA = buf.p + T;
  // The head's x and y rows of a token tile, contiguous: token rows are H*P floats apart (often a
  // multiple of 4 KB), and reading one cache line per row defeats the prefetchers; copying whole
  // row segments first keeps many misses in flight.
  float* xt = buf.p + 2 * T;
  float* yt = xt + kTile * P;
  for (std::int64_t hd = h0; hd < h1; ++hd) {
    const std::int64_t g = hd / hpg;
    head_dt(a, hd, dt, dA);
    float* hs = a.h + hd * P * N;
    const float* Dh = a.D + hd * P;
    // N > 1: rows of 4 channels; per token the B and C vectors are loaded once for the 4 rows.
    const std::int64_t Nv = N / VM::W * VM::W;  // vector part of the state row; the rest scalar
    // Tiles of 64 tokens (their B and C rows stay in L1/L2) x blocks of 16 rows (8 KB of state at
    // N = 128, in L1); inside, 4 rows at a time share each load of B and C.
    for (std::int64_t tb = 0; tb < T; tb += kTile) {
     const std::int64_t te = (T - tb < kTile) ? T : tb + kTile;
     for (std::int64_t t = tb; t < te; ++t)
       std::memcpy(xt + (t - tb) * P, a.x + t * a.ld_x + hd * P, static_cast<std::size_t>(P) * sizeof(float));
     // Indexed by absolute t below: xh + t * P is row t - tb of the tile.
     const float* xh = xt - tb * P;
     float* yh = yt - tb * P;
     for (std::int64_t pb = 0; pb < P; pb += 16) {
     const std::int64_t pe = (P - pb < 16) ? P : pb + 16;
     for (std::int64_t t = tb; t < te; ++t) {
      for (std::int64_t p0 = pb; p0 < pe; p0 += 4) {
        const std::int64_t nr = (pe - p0 < 4) ? pe - p0 : 4;
        const float* Bt = a.B + t * a.ld_B + g * N;
        const float* Ct = a.C + t * a.ld_C + g * N;
        const float* xr = xh + t * P + p0;
        float* yr = yh + t * P + p0;
        const V da = VM::set1(dA[t]);
        if (nr == 4) {
          const V c0 = VM::set1(dt[t] * xr[0]), c1 = VM::set1(dt[t] * xr[1]);
          const V c2 = VM::set1(dt[t] * xr[2]), c3 = VM::set1(dt[t] * xr[3]);
          float* r0 = hs + p0 * N;
          float* r1 = r0 + N;
          float* r2 = r1 + N;
          float* r3 = r2 + N;
          V a0 = VM::zero(), a1 = VM::zero(), a2 = VM::zero(), a3 = VM::zero();
          for (std::int64_t n = 0; n < Nv; n += VM::W) {
            const V b = VM::load(Bt + n), c = VM::load(Ct + n);
            V s0 = VM::fma(VM::load(r0 + n), da, VM::mul(c0, b));
            V s1 = VM::fma(VM::load(r1 + n), da, VM::mul(c1, b));
            V s2 = VM::fma(VM::load(r2 + n), da, VM::mul(c2, b));
            V s3 = VM::fma(VM::load(r3 + n), da, VM::mul(c3, b));
            VM::store(r0 + n, s0);
            VM::store(r1 + n, s1);
            VM::store(r2 + n, s2);
            VM::store(r3 + n, s3);
            a0 = VM::fma(s0, c, a0);
            a1 = VM::fma(s1, c, a1);
            a2 = VM::fma(s2, c, a2);
            a3 = VM::fma(s3, c, a3);
          }
          float acc[4] = {VM::hsum(a0), VM::hsum(a1), VM::hsum(a2), VM::hsum(a3)};
          for (std::int64_t n = Nv; n < N; ++n) {
            for (int r = 0; r < 4; ++r) {
              float& s = hs[(p0 + r) * N + n];
              s = s * dA[t] + dt[t] * xr[r] * Bt[n];
              acc[r] += s * Ct[n];
            }
          }
          for (int r = 0; r < 4; ++r) yr[r] = acc[r] + Dh[p0 + r] * xr[r];
        } else {
          for (std::int64_t r = 0; r < nr; ++r) {
            const V cr = VM::set1(dt[t] * xr[r]);
            float* row = hs + (p0 + r) * N;
            V acc = VM::zero();
            for (std::int64_t n = 0; n < Nv; n += VM::W) {
              V s = VM::fma(VM::load(row + n), da, VM::mul(cr, VM::load(Bt + n)));
              VM::store(row + n, s);
              acc = VM::fma(s, VM::load(Ct + n), acc);
            }
            float accs = VM::hsum(acc);
            for (std::int64_t n = Nv; n < N; ++n) {
              row[n] = row[n] * dA[t] + dt[t] * xr[r] * Bt[n];
              accs += row[n] * Ct[n];
            }
            yr[r] = accs + Dh[p0 + r] * xr[r];
          }
        }
      }
     }
     }
     for (std::int64_t t = tb; t < te; ++t)
       std::memcpy(a.y + t * a.ld_y + hd * P, yt + (t - tb) * P, static_cast<std::size_t>(P) * sizeof(float));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// out[M x Nc] += a[M x K] @ b[K x Nc], all row-major with leading dimensions. Register-blocked
// 4 rows x 2 vectors; k_limit(i) lets the caller cut the K loop of a row block (lower-triangular a).
template <class VM>
void gemm_acc(std::int64_t M, std::int64_t K, std::int64_t Nc, const float* a, std::int64_t lda,
              const float* b, std::int64_t ldb, float* out, std::int64_t ldo,
              bool lower_triangular = false) {
  using V = typename VM::V;
  constexpr std::int64_t W = VM::W;
  std::int64_t i = 0;
  for (; i < M; i += 4) {
    const std::int64_t mr = (M - i < 4) ? M - i : 4;
    // With a lower-triangular a, rows i..i+3 have no entries beyond column i+3.
    const std::int64_t kend = lower_triangular ? ((i + mr < K) ? i + mr : K) : K;
    std::int64_t j = 0;
    if (mr == 4) {
      const float* a0 = a + i * lda;
      const float* a1 = a0 + lda;
      const float* a2 = a1 + lda;
      const float* a3 = a2 + lda;
      for (; j + 2 * W <= Nc; j += 2 * W) {
        float* o0 = out + i * ldo + j;
        float* o1 = o0 + ldo;
        float* o2 = o1 + ldo;
        float* o3 = o2 + ldo;
        V c00 = VM::load(o0), c01 = VM::load(o0 + W), c10 = VM::load(o1), c11 = VM::load(o1 + W);
        V c20 = VM::load(o2), c21 = VM::load(o2 + W), c30 = VM::load(o3), c31 = VM::load(o3 + W);
        for (std::int64_t k = 0; k < kend; ++k) {
          const V b0 = VM::load(b + k * ldb + j), b1 = VM::load(b + k * ldb + j + W);
          V s = VM::set1(a0[k]);
          c00 = VM::fma(s, b0, c00);
          c01 = VM::fma(s, b1, c01);
          s = VM::set1(a1[k]);
          c10 = VM::fma(s, b0, c10);
          c11 = VM::fma(s, b1, c11);
          s = VM::set1(a2[k]);
          c20 = VM::fma(s, b0, c20);
          c21 = VM::fma(s, b1, c21);
          s = VM::set1(a3[k]);
          c30 = VM::fma(s, b0, c30);
          c31 = VM::fma(s, b1, c31);
        }
        VM::store(o0, c00);
        VM::store(o0 + W, c01);
        VM::store(o1, c10);
        VM::store(o1 + W, c11);
        VM::store(o2, c20);
        VM::store(o2 + W, c21);
        VM::store(o3, c30);
        VM::store(o3 + W, c31);
      }
    }
    // Remaining rows / columns: one row and one (possibly partial) vector at a time.
    for (std::int64_t r = 0; r < mr; ++r) {
      const float* ar = a + (i + r) * lda;
      for (std::int64_t jj = (mr == 4 ? j : 0); jj < Nc; jj += W) {
        const std::int64_t n = (Nc - jj < W) ? Nc - jj : W;
        float* o = out + (i + r) * ldo + jj;
        if (n == W) {
          V c = VM::load(o);
          for (std::int64_t k = 0; k < kend; ++k) c = VM::fma(VM::set1(ar[k]), VM::load(b + k * ldb + jj), c);
          VM::store(o, c);
        } else {
          V c = load_part<VM>(o, n);
          for (std::int64_t k = 0; k < kend; ++k)
            c = VM::fma(VM::set1(ar[k]), load_part<VM>(b + k * ldb + jj, n), c);
          store_part<VM>(o, c, n);
        }
      }
    }
  }
}

// Chunked SSD (state-space duality) prefill, heads [h0, h1). Per chunk of L tokens with in-chunk
// cumulative log-decay cum[t] = sum_{r<=t} A dt[r] and Xs[s] = dt[s] x[s]:
//   y[t]   = sum_{s<=t} (C[t].B[s]) exp(cum[t]-cum[s]) Xs[s]      (intra-chunk, quadratic form)
//          + exp(cum[t]) C[t] . h_prev                            (contribution of earlier chunks)
//          + D x[t]
//   h_new  = exp(cum[L-1]) h_prev + sum_s exp(cum[L-1]-cum[s]) B[s] Xs[s]^T   (chunk state)
// Only differences cum[t]-cum[s] <= 0 are exponentiated (segment sums), so nothing overflows.
// The state is kept transposed (hT [N, P]) during the call so all four products are row-major GEMMs.
template <class VM>
void scan_chunked_range(const ScanArgs& a, std::int64_t chunk, std::int64_t h0, std::int64_t h1) {
  using V = typename VM::V;
  const std::int64_t P = a.s.head_dim, N = a.s.d_state, T = a.T;
  const std::int64_t hpg = a.s.n_heads / a.s.n_groups;
  const std::int64_t L = chunk;
  const std::int64_t nh = h1 - h0;
  // Scratch: transposed states of the range, and per-chunk work arrays.
  Scratch hT_all(nh * N * P);
  Scratch work(L * N /*BcT*/ + L * L /*CB*/ + L * L /*Mw*/ + L * P /*Xs*/ + L * P /*Y*/ +
               L * N /*Ce*/ + N * L /*BwT*/ + 4 * L /*dt, dA, cum, e*/);
  float* BcT = work.p;         // [N, L]  B of the chunk, transposed
  float* CB = BcT + L * N;     // [L, L]  C[t].B[s]
  float* Mw = CB + L * L;      // [L, L]  masked, decayed CB
  float* Xs = Mw + L * L;      // [L, P]  dt[s] x[s]
  float* Y = Xs + L * P;       // [L, P]  output rows of the chunk
  float* Ce = Y + L * P;       // [L, N]  exp(cum[t]) C[t]
  float* BwT = Ce + L * N;     // [N, L]  exp(cum[L-1]-cum[s]) B[s], transposed
  float* dtv = BwT + N * L;
  float* cum = dtv + L;
  float* ecum = cum + L;
  float* wlast = ecum + L;     // exp(cum[L-1] - cum[s])
  for (std::int64_t i = 0; i < nh; ++i) {
    const float* hs = a.h + (h0 + i) * P * N;
    float* hT = hT_all.p + i * N * P;
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t n = 0; n < N; ++n) hT[n * P + p] = hs[p * N + n];
  }
  for (std::int64_t g = h0 / hpg; g * hpg < h1; ++g) {
    const std::int64_t hb = (g * hpg > h0) ? g * hpg : h0;
    const std::int64_t he = ((g + 1) * hpg < h1) ? (g + 1) * hpg : h1;
    for (std::int64_t t0 = 0; t0 < T; t0 += L) {
      const std::int64_t Lc = (T - t0 < L) ? T - t0 : L;
      // C.B of the group, shared by its heads.
      for (std::int64_t s = 0; s < Lc; ++s)
        for (std::int64_t n = 0; n < N; ++n) BcT[n * Lc + s] = a.B[(t0 + s) * a.ld_B + g * N + n];
      for (std::int64_t k = 0; k < Lc * Lc; ++k) CB[k] = 0.0f;
      gemm_acc<VM>(Lc, N, Lc, a.C + t0 * a.ld_C + g * N, a.ld_C, BcT, Lc, CB, Lc);
      for (std::int64_t hd = hb; hd < he; ++hd) {
        float* hT = hT_all.p + (hd - h0) * N * P;
        float run = 0.0f;
        for (std::int64_t t = 0; t < Lc; ++t) {
          dtv[t] = softplus_ref(a.dt_raw[(t0 + t) * a.ld_dt + hd] + a.dt_bias[hd]);
          run += a.A[hd] * dtv[t];
          cum[t] = run;
          ecum[t] = std::exp(run);
        }
        const float* xh = a.x + t0 * a.ld_x + hd * P;
        const float* Dh = a.D + hd * P;
        for (std::int64_t t = 0; t < Lc; ++t) {
          const float* xr = xh + t * a.ld_x;
          // The next head reads the neighbouring columns of these rows: rows are far apart in memory
          // (H*P floats), so ask for them now rather than stall on each one then.
          if (hd + 1 < he)
            for (std::int64_t p = 0; p < P; p += 16) __builtin_prefetch(xr + P + p);
          for (std::int64_t p = 0; p < P; ++p) {
            Xs[t * P + p] = dtv[t] * xr[p];
            Y[t * P + p] = Dh[p] * xr[p];
          }
          // Mw[t, s] = CB[t, s] exp(cum[t] - cum[s]) for s <= t, 0 above the diagonal.
          const V ct = VM::set1(cum[t]);
          float* mrow = Mw + t * Lc;
          const float* cbrow = CB + t * Lc;
          std::int64_t s = 0;
          for (; s + VM::W <= t + 1; s += VM::W)
            VM::store(mrow + s, VM::mul(VM::load(cbrow + s), VM::exp(VM::sub(ct, VM::load(cum + s)))));
          if (s < t + 1) {
            const std::int64_t n = t + 1 - s;
            store_part<VM>(mrow + s, VM::mul(load_part<VM>(cbrow + s, n), VM::exp(VM::sub(ct, load_part<VM>(cum + s, n)))), n);
          }
          for (s = t + 1; s < Lc; ++s) mrow[s] = 0.0f;
          const float* Ct = a.C + (t0 + t) * a.ld_C + g * N;
          for (std::int64_t n = 0; n < N; ++n) Ce[t * N + n] = ecum[t] * Ct[n];
        }
        gemm_acc<VM>(Lc, Lc, P, Mw, Lc, Xs, P, Y, P, /*lower_triangular=*/true);
        gemm_acc<VM>(Lc, N, P, Ce, N, hT, P, Y, P);
        for (std::int64_t t = 0; t < Lc; ++t)
          std::memcpy(a.y + (t0 + t) * a.ld_y + hd * P, Y + t * P, static_cast<std::size_t>(P) * sizeof(float));
        // State update.
        const float clast = cum[Lc - 1];
        const float elast = ecum[Lc - 1];
        for (std::int64_t s = 0; s < Lc; ++s) wlast[s] = std::exp(clast - cum[s]);
        for (std::int64_t n = 0; n < N; ++n) {
          for (std::int64_t s = 0; s < Lc; ++s)
            BwT[n * Lc + s] = wlast[s] * BcT[n * Lc + s];
          for (std::int64_t p = 0; p < P; ++p) hT[n * P + p] *= elast;
        }
        gemm_acc<VM>(N, Lc, P, BwT, Lc, Xs, P, hT, P);
      }
    }
  }
  for (std::int64_t i = 0; i < nh; ++i) {
    float* hs = a.h + (h0 + i) * P * N;
    const float* hT = hT_all.p + i * N * P;
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t n = 0; n < N; ++n) hs[p * N + n] = hT[n * P + p];
  }
}

// The set's vector functions over an array (the tests' view of them): whole vectors, then the tail.
template <class VM, typename VM::V (*F)(typename VM::V)>
void map_array(const float* in, float* out, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + VM::W <= n; i += VM::W) VM::store(out + i, F(VM::load(in + i)));
  if (i < n) store_part<VM>(out + i, F(load_part<VM>(in + i, n - i)), n - i);
}

// The kernel table of this set.
template <class VM>
constexpr SsmKernels make_kernels() {
  SsmKernels k{};
  k.conv1d = &conv1d_range_tm<VM>;
  k.scan_sequential = &scan_sequential_range<VM>;
  k.scan_chunked = &scan_chunked_range<VM>;
  k.conv_scan_gate = &conv_scan_gate_range<VM>;
  k.gate_silu = &gate_silu_rows<VM>;
  k.gated_rmsnorm = &gated_rmsnorm_rows<VM>;
  k.exp_array = &map_array<VM, &VM::exp>;
  k.exp_f32_array = &map_array<VM, &VM::exp_f32>;
  k.exp_f32_reference_array = &map_array<VM, &VM::exp_f32_reference>;
  k.silu_array = &map_array<VM, &VM::silu>;
  k.softplus_array = &map_array<VM, &VM::softplus>;
  k.log1p_array = &map_array<VM, &VM::log1p_f32>;
  return k;
}
