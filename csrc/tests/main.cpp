// GoogleTest entry point. BITMAMBA_TEST_ISA (set per ctest entry) selects the kernel set every test
// runs under, so each dispatched kernel is checked against its scalar reference on every path. A set
// the CPU cannot run exits with 77, which ctest reports as skipped.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "core/cpu_features.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (const char* want = std::getenv("BITMAMBA_TEST_ISA"); want && *want) {
    bitmamba::Isa isa = bitmamba::parse_isa(want);
    if (!bitmamba::isa_supported(isa)) {
      std::printf("kernel set %s is not supported on this CPU: skipping\n", want);
      return 77;
    }
    bitmamba::set_active_isa(isa);
  }
  std::printf("running with kernel set %s\n", bitmamba::isa_name(bitmamba::active_isa()));
  return RUN_ALL_TESTS();
}
