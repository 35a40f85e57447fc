// Internal to kernels/cuda: error checks, argument checks, the device copy of the grid
// tables, and the dispatch from a type id to a kernel template over the block struct.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "gguf/types.h"
#include "kernels/cuda.h"
#include "quant/blocks.h"
#include "quant/decode.h"
#include "quant/grids.h"

namespace kernels::cuda::detail {

// Throws Error("what: cudaGetErrorString(e)") unless e is cudaSuccess.
void check(cudaError_t e, const std::string& what);
// After a launch: the launch's own error (a bad configuration, no kernel image for this GPU).
void check_launch(const char* kernel, TypeId type);

// Throws std::invalid_argument unless p is memory the current device can address.
void require_device_pointer(const void* p, const char* name);
// Throws std::invalid_argument unless n_values is a non-negative whole number of blocks.
void require_whole_blocks(TypeId type, int64_t n_values, const char* what);

// The grid tables on the current device, uploaded on first use (kept for the process).
quant::IqGrids device_grids();

// The float formats, as "blocks" of one value for the dispatch below.
struct F32Value {
    static constexpr TypeId kType = TypeId::F32;
};
struct F16Value {
    static constexpr TypeId kType = TypeId::F16;
};
struct BF16Value {
    static constexpr TypeId kType = TypeId::BF16;
};

template <class... Blocks> struct TypeList {};
template <class... Blocks> using WithFloats = TypeList<Blocks..., F16Value, BF16Value, F32Value>;
template <class... Blocks> WithFloats<Blocks...> with_floats(quant::BlockList<Blocks...>);
using AllTypes = decltype(with_floats(quant::AllBlocks{}));

// Calls fn.template operator()<Block>() for the block struct (or float tag) of `type`;
// returns false when the type is none of them.
template <class Fn, class... Blocks> bool visit_type(TypeId type, Fn&& fn, TypeList<Blocks...>) {
    return ((type == Blocks::kType ? (fn.template operator()<Blocks>(), true) : false) || ...);
}
template <class Fn> bool visit_type(TypeId type, Fn&& fn) { return visit_type(type, fn, AllTypes{}); }

inline const char* type_name(TypeId type) { return gguf::type_info(type).name.data(); }

}  // namespace kernels::cuda::detail
