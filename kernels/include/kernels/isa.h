// Which instruction-set path the kernels run: chosen once per process from what the CPU
// supports, or forced with the environment variable GGUFKIT_ISA=scalar|avx2|avx512.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace kernels {

// A path of kernels. Scalar is quant/'s reference code and runs everywhere; every other path
// must give the same dequantized bits. (NEON would be one more value here, its CPU check in
// isa.cpp and its family files registered in dispatch.cpp.)
enum class Isa : uint8_t {
    Scalar,
    Avx2,    // AVX2 + FMA + F16C (+ BMI2)
    Avx512,  // AVX-512 F/BW/VL/DQ, with VNNI and BF16 where the CPU has them
};
inline constexpr std::array kIsas = {Isa::Scalar, Isa::Avx2, Isa::Avx512};

std::string_view isa_name(Isa isa);                  // "scalar", "avx2", "avx512"
std::optional<Isa> isa_from_name(std::string_view name);  // case-insensitive

// Whether this build has the path and this CPU (and operating system) can run it.
bool isa_available(Isa isa);
std::vector<Isa> available_isas();

// The path every call without an explicit Isa uses: GGUFKIT_ISA when set, else the widest
// available. Decided on the first call; throws std::runtime_error, naming the variable, when
// GGUFKIT_ISA names an unknown path or one this CPU cannot run.
Isa active_isa();

}  // namespace kernels
