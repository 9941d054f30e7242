// The scalar SSM kernel set: ssm_impl.h over width-1 operations (std::exp), for CPUs without SIMD
// kernels and as the "forced scalar" path the tests compare the vector sets with.
#include "kernels/ssm/vec_math_scalar.h"

#define BITMAMBA_SSM_OPS vm_scalar::Ops
#define BITMAMBA_SSM_KERNELS kSsmScalar
#include "kernels/ssm/ssm_kernel_set.h"
