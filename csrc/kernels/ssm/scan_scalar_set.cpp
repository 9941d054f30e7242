// The scalar kernel set: ssm_impl.h over width-1 operations (std::exp), for CPUs without SIMD
// kernels and as the "forced scalar" path the tests compare the vector sets with.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/ssm/ssm_internal.h"
#include "kernels/ssm/vec_math_scalar.h"

namespace bitmamba::ssm {
namespace {
#include "kernels/ssm/ssm_impl.h"
}  // namespace

const SsmKernels& kernels_scalar() {
  static const SsmKernels k = make_kernels<vm_scalar::Ops>("scalar");
  return k;
}

}  // namespace bitmamba::ssm
