// The neon SSM kernel set: ssm_impl.h over vec_math_neon.h (this file gets the neon target flags
// from CMake by its name).
#include "kernels/ssm/vec_math_neon.h"

#define BITMAMBA_SSM_OPS vm_neon::Ops
#define BITMAMBA_SSM_KERNELS kSsmNeon
#include "kernels/ssm/ssm_kernel_set.h"
