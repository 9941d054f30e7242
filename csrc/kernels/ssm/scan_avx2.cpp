// The avx2 SSM kernel set: ssm_impl.h over vec_math_avx2.h (this file gets the avx2 target flags
// from CMake by its name).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/ssm/ssm_internal.h"
#include "kernels/ssm/vec_math_avx2.h"

namespace bitmamba::ssm {
namespace {
#include "kernels/ssm/ssm_impl.h"
}  // namespace

const SsmKernels& kernels_avx2() {
  static const SsmKernels k = make_kernels<vm_avx2::Ops>("avx2");
  return k;
}

}  // namespace bitmamba::ssm
