// Plain references of the SSM kernels (ssm_reference.cpp), for the tests only.
#pragma once

#include <cstdint>

#include "kernels/ssm/ssm_internal.h"

namespace bitmamba::ssm::ref {

void causal_conv1d(const float* x, std::int64_t T, std::int64_t C, std::int64_t ld_x,
                   const float* weight, const float* bias, int W, float* conv_state, float* out,
                   std::int64_t ld_out, bool apply_silu);
// Heads [h_begin, h_end) of the sequential recurrence, token by token.
void selective_scan(const ScanArgs& a, std::int64_t h_begin, std::int64_t h_end);
void gate_silu(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z, std::int64_t T,
               std::int64_t C);
void gated_rmsnorm(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                   const float* weight, std::int64_t T, std::int64_t C, std::int64_t n_groups,
                   float eps);

}  // namespace bitmamba::ssm::ref
