// The avx512 SSM kernel set: ssm_impl.h over vec_math_avx512.h (this file gets the avx512 target flags
// from CMake by its name).
// GCC 12 reports a false "may be used uninitialized" inside its own avx512fintrin.h (the
// _mm512_undefined_ps() pass-through operand of the masked builtins); our code reads nothing undefined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/ssm/ssm_internal.h"
#include "kernels/ssm/vec_math_avx512.h"

namespace bitmamba::ssm {
namespace {
#include "kernels/ssm/ssm_impl.h"
}  // namespace

const SsmKernels& kernels_avx512() {
  static const SsmKernels k = make_kernels<vm_avx512::Ops>("avx512");
  return k;
}

}  // namespace bitmamba::ssm
