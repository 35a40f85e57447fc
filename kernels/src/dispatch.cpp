// The one place that decides which kernel runs: one table per path, each the scalar path
// overlaid with the path's own family files.
#include <array>
#include <memory>
#include <stdexcept>
#include <string>

#include "table.h"

namespace kernels::detail {

void Table::set_dequantize(gguf::TypeId t, DequantizeFn f) {
    types[static_cast<uint32_t>(t)].dequantize = f;
    types[static_cast<uint32_t>(t)].provided |= kDequantize;
}
void Table::set_dot(gguf::TypeId t, DotFn f) {
    types[static_cast<uint32_t>(t)].dot = f;
    types[static_cast<uint32_t>(t)].provided |= kDot;
}
void Table::set_quantize(gguf::TypeId t, QuantizeFn f) {
    types[static_cast<uint32_t>(t)].quantize = f;
    types[static_cast<uint32_t>(t)].provided |= kQuantize;
}
const TypeKernels& Table::at(gguf::TypeId t) const { return types[static_cast<uint32_t>(t)]; }

namespace {

Table build(Isa isa) {
    Table t;
    add_scalar(t);
    if (isa == Isa::Scalar) return t;
    for (TypeKernels& k : t.types) k.provided = 0;  // from here on, only what the path adds
    t.int_product = nullptr;                         // the scalar one is a reference, not a fallback
    t.isa = isa;
#if defined(GGUFKIT_KERNELS_X86)
    if (isa == Isa::Avx2) {
        avx2::add_floats(t);
        avx2::add_legacy(t);
        avx2::add_kquants(t);
        avx2::add_iquants(t);
        avx2::add_microscaling(t);
        avx2::add_ternary(t);
        avx2::add_gemm(t);
    } else if (isa == Isa::Avx512) {
        avx512::add_floats(t);
        avx512::add_legacy(t);
        avx512::add_kquants(t);
        avx512::add_iquants(t);
        avx512::add_microscaling(t);
        avx512::add_ternary(t);
        avx512::add_gemm(t);
    }
#endif
    return t;
}

}  // namespace

const Table& table(Isa isa) {
    // Every available path's table, built once (a few hundred pointers each): after that a
    // lookup is one load and one test, cheap enough for a call per row.
    static const auto tables = [] {
        std::array<std::unique_ptr<Table>, kIsas.size()> all;
        for (Isa i : kIsas)
            if (isa_available(i)) all[static_cast<size_t>(i)] = std::make_unique<Table>(build(i));
        return all;
    }();
    const auto i = static_cast<size_t>(isa);
    if (i >= tables.size() || !tables[i])
        throw std::runtime_error("kernels: the " + std::string(isa_name(isa)) + " path is not available on this CPU");
    return *tables[i];
}

}  // namespace kernels::detail
