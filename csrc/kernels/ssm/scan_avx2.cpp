// The avx2 SSM kernel set: ssm_impl.h over vec_math_avx2.h (this file gets the avx2 target flags
// from CMake by its name).
#include "kernels/ssm/vec_math_avx2.h"

#define BITMAMBA_SSM_OPS vm_avx2::Ops
#define BITMAMBA_SSM_KERNELS kSsmAvx2
#include "kernels/ssm/ssm_kernel_set.h"
