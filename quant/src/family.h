// How each family of formats fills in its rows of the traits table. Internal to quant/.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>

#include "quant/decode.h"
#include "quant/quant.h"

namespace quant::detail {

using TraitsTable = std::array<Traits, gguf::kTypeCount>;

// Fills a type's row of the table.
inline void set_type(TraitsTable& t, TypeId id, DequantizeFn dequantize, QuantizeRowFn quantize, bool needs_importance = false) {
    Traits& row = t[static_cast<uint32_t>(id)];
    row.dequantize = dequantize;
    row.quantize = quantize;
    row.needs_importance = needs_importance;
}

// The other efforts of a type that has them (Effort), and whether each changes the bytes
// without and with importance weights (Traits::fast_changes, best_changes).
struct EffortChanges {
    bool fast_without = true, fast_with = false, best_without = true, best_with = true;
};
inline void set_efforts(TraitsTable& t, TypeId id, QuantizeRowFn fast, QuantizeRowFn best, EffortChanges changes = {}) {
    Traits& row = t[static_cast<uint32_t>(id)];
    row.fast = fast;
    row.best = best;
    row.fast_changes[0] = fast && changes.fast_without;
    row.fast_changes[1] = fast && changes.fast_with;
    row.best_changes[0] = best && changes.best_without;
    row.best_changes[1] = best && changes.best_with;
}

void register_float_formats(TraitsTable& t);  // float_formats.cpp
void register_legacy(TraitsTable& t);         // legacy.cpp: Q4_0 ... Q8_0
void register_kquants(TraitsTable& t);        // kquants.cpp: Q2_K ... Q6_K
void register_iquants(TraitsTable& t);        // iquants.cpp: IQ1_S ... IQ4_XS
void register_microscaling(TraitsTable& t);   // microscaling.cpp: MXFP4, NVFP4
void register_ternary(TraitsTable& t);        // ternary.cpp: TQ1_0, TQ2_0, Q1_0, Q2_0

// Marks types whose quantizers fit their block scales (Traits::fitted_scales).
inline void set_fitted_scales(TraitsTable& t, std::initializer_list<TypeId> ids) {
    for (TypeId id : ids) t[static_cast<uint32_t>(id)].fitted_scales = true;
}

// Records where a type's blocks keep their scales (offsets from the block struct).
inline void set_scales(TraitsTable& t, TypeId id, std::initializer_list<ScaleField> fields) {
    int i = 0;
    for (const ScaleField& f : fields) t[static_cast<uint32_t>(id)].scales[i++] = f;
}

// Dequantizes n blocks of Block with its decoder (quant/decode.h), the one definition of
// the format that the kernels share.
template <class Block> void dequantize_blocks(const uint8_t* src, float* y, int64_t n) {
    const Block* b = reinterpret_cast<const Block*>(src);  // a block is bytes: any address is aligned
    if constexpr (requires { decode(*b, y); }) {
        for (; n-- > 0; ++b, y += block_values<Block>) decode(*b, y);
    } else {
        const IqGrids& grids = host_grids();
        for (; n-- > 0; ++b, y += block_values<Block>) decode(*b, grids, y);
    }
}

// A block type's whole registration: its dequantizer (from its decoder), its quantizer,
// where its scales are, and whether quantizing needs importance weights.
template <class Block>
void add_block_type(TraitsTable& t, QuantizeRowFn quantize, std::initializer_list<ScaleField> scales, bool needs_importance = false) {
    set_type(t, Block::kType, dequantize_blocks<Block>, quantize, needs_importance);
    set_scales(t, Block::kType, scales);
}

}  // namespace quant::detail
