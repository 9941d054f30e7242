// The avx512 SSM kernel set: ssm_impl.h over vec_math_avx512.h (this file gets the avx512 target flags
// from CMake by its name).
// GCC 12 reports a false "(may be) used uninitialized" inside its own avx512fintrin.h (the
// _mm512_undefined_*() pass-through operand of the masked builtins); our code reads nothing undefined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "kernels/ssm/vec_math_avx512.h"

#define BITMAMBA_SSM_OPS vm_avx512::Ops
#define BITMAMBA_SSM_KERNELS kSsmAvx512
#include "kernels/ssm/ssm_kernel_set.h"
