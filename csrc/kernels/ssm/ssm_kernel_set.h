// Defines one kernel set's SsmKernels: ssm_impl.h instantiated over a vector-operations type. A
// scan_<set>.cpp file includes its vec_math_<set>.h, defines
//   BITMAMBA_SSM_OPS      the operations type (e.g. vm_avx2::Ops)
//   BITMAMBA_SSM_KERNELS  the SsmKernels object to define (declared in ssm_internal.h, e.g. kSsmAvx2)
// and then includes this header; CMake compiles the file with the target flags its name asks for.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/ssm/ssm_internal.h"

namespace bitmamba::ssm {
namespace {
#include "kernels/ssm/ssm_impl.h"
}  // namespace

// Constant-initialized (make_kernels is constexpr): usable before any dynamic initialization.
extern const SsmKernels BITMAMBA_SSM_KERNELS = make_kernels<BITMAMBA_SSM_OPS>();

}  // namespace bitmamba::ssm
