// The neon SSM kernel set: ssm_impl.h over vec_math_neon.h (this file gets the neon target flags
// from CMake by its name).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/ssm/ssm_internal.h"
#include "kernels/ssm/vec_math_neon.h"

namespace bitmamba::ssm {
namespace {
#include "kernels/ssm/ssm_impl.h"
}  // namespace

const SsmKernels& kernels_neon() {
  static const SsmKernels k = make_kernels<vm_neon::Ops>("neon");
  return k;
}

}  // namespace bitmamba::ssm
