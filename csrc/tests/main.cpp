// GoogleTest entry point. BITMAMBA_TEST_ISA (set per ctest entry and by tests/test_cpp.py) selects the
// kernel set every test runs under, so each dispatched kernel is checked against its scalar reference
// on every path. A set the CPU cannot run exits with 77, which ctest reports as skipped.
// --list-kernel-sets prints the kernel sets this build compiles, one per line: the test matrix (the
// ctest entries, tests/test_cpp.py) is that list, so it always covers every row of the kernel table.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/kernel_table.h"

int main(int argc, char** argv) {
  using namespace bitmamba;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--list-kernel-sets") == 0) {
      for (const KernelSet& k : kernel_sets())
        if (kernel_set_compiled(k)) std::printf("%s\n", k.name);
      return 0;
    }
  ::testing::InitGoogleTest(&argc, argv);
  if (const char* want = std::getenv("BITMAMBA_TEST_ISA"); want && *want) {
    if (!kernel_set_supported(find_kernel_set(want))) {
      std::printf("kernel set %s is not supported on this CPU: skipping\n", want);
      return 77;
    }
    set_active_kernel_set(choose_kernel_set(want, "BITMAMBA_TEST_ISA"));
  }
  std::printf("running with kernel set %s\n", active_kernel_set().name);
  return RUN_ALL_TESTS();
}
