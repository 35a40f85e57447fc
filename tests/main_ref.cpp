// The reference suite needs ../shared/ref beside the checkout. Without it, it says so and
// exits 77, which ctest reports as skipped (never as passed).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>

#include "support.h"

int main(int argc, char** argv) {
    if (!std::filesystem::is_directory(test::ref_dir())) {
        std::printf("SKIPPED: reference data not found at %s (it lives in ../shared beside the checkout)\n",
                    test::ref_dir().c_str());
        return 77;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
