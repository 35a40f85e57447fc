#include "kernels/check.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "quant/decode.h"
#include "quant/executor.h"
#include "quant/quant.h"

namespace kernels {

using quant::ScaleField;
using quant::ScaleKind;
using quant::u16le;
using quant::u32le;

void DataCheck::merge(const DataCheck& later) {
    per_block = per_block || later.per_block;
    if (first < 0 && later.first >= 0) {
        first = later.first;
        first_problem = later.first_problem;
    }
    bad += later.bad;
}

namespace {

// What is wrong with one scale field, or nullptr.
const char* problem(const ScaleField& f, const uint8_t* block) {
    const uint8_t* p = block + f.offset;
    switch (f.kind) {
        case ScaleKind::F16:
        case ScaleKind::F16Nibbles: {
            // F16Nibbles: the f16 is the top nibbles of four u16 words (IQ1_M's, decode.h).
            const uint16_t h = f.kind == ScaleKind::F16Nibbles ? quant::iq1_m_d_bits(p) : u16le(p);
            if ((h & 0x7c00) != 0x7c00) return nullptr;
            return h & 0x3ff ? "is NaN" : "is Inf";
        }
        case ScaleKind::F32: {
            const float v = std::bit_cast<float>(u32le(p));
            return std::isnan(v) ? "is NaN" : std::isinf(v) ? "is Inf" : nullptr;
        }
        case ScaleKind::E8M0: return *p == 0xff ? "is 0xff, NaN in E8M0" : nullptr;
        case ScaleKind::UE4M3: return (*p & 0x7f) == 0x7f ? "is 0x7f, NaN in E4M3" : nullptr;
        case ScaleKind::None: return nullptr;
    }
    return nullptr;
}

// Whether a field holds NaN or Inf, without branches (the loops below vectorize or pipeline).
inline uint32_t field_bad(ScaleKind kind, const uint8_t* p) {
    switch (kind) {
        case ScaleKind::F16: return (u16le(p) & 0x7c00) == 0x7c00;
        case ScaleKind::F16Nibbles: return (quant::iq1_m_d_bits(p) & 0x7c00) == 0x7c00;
        case ScaleKind::F32: return (u32le(p) & 0x7f800000u) == 0x7f800000u;
        case ScaleKind::E8M0: return *p == 0xff;
        case ScaleKind::UE4M3: return (*p & 0x7f) == 0x7f;
        case ScaleKind::None: return 0;
    }
    return 0;
}

// The number of blocks with at least one bad scale field. The common layouts (one f16 scale,
// or two) get loops of their own; any other goes through field_bad per field.
uint64_t count_bad_blocks(const uint8_t* data, uint64_t n, uint32_t stride, const ScaleField* f, int fields) {
    uint64_t bad = 0;
    if (fields == 1 && f[0].kind == ScaleKind::F16) {
        const uint8_t* p = data + f[0].offset;
        for (uint64_t b = 0; b < n; ++b) bad += (u16le(p + b * stride) & 0x7c00) == 0x7c00;
    } else if (fields == 2 && f[0].kind == ScaleKind::F16 && f[1].kind == ScaleKind::F16) {
        const uint8_t* p = data + f[0].offset;
        const uint8_t* q = data + f[1].offset;
        for (uint64_t b = 0; b < n; ++b)
            bad += static_cast<uint32_t>((u16le(p + b * stride) & 0x7c00) == 0x7c00) | static_cast<uint32_t>((u16le(q + b * stride) & 0x7c00) == 0x7c00);
    } else {
        for (uint64_t b = 0; b < n; ++b) {
            uint32_t any = 0;
            for (int k = 0; k < fields; ++k) any |= field_bad(f[k].kind, data + b * stride + f[k].offset);
            bad += any;
        }
    }
    return bad;
}

// Counts values whose exponent bits are all set (Inf or NaN): a branch-free loop the
// compiler vectorizes; the slow search for the first one runs only when the count is not 0.
template <class Word> uint64_t count_nonfinite(const uint8_t* p, uint64_t n, Word exponent) {
    uint64_t count = 0;
    // 32-bit counts over chunks keep the vector lanes narrow (a 64-bit count per lane halves them).
    constexpr uint64_t kChunk = uint64_t{1} << 20;
    for (uint64_t start = 0; start < n; start += kChunk) {
        const uint64_t end = std::min(n, start + kChunk);
        uint32_t part = 0;
        for (uint64_t i = start; i < end; ++i) {
            Word v;
            std::memcpy(&v, p + i * sizeof(Word), sizeof(Word));  // little-endian storage, as the host
            part += (v & exponent) == exponent;
        }
        count += part;
    }
    return count;
}

template <class Word> DataCheck scan(std::span<const uint8_t> bytes, Word exponent) {
    DataCheck c;
    const uint64_t n = bytes.size() / sizeof(Word);
    c.bad = count_nonfinite(bytes.data(), n, exponent);
    for (uint64_t i = 0; c.bad && i < n; ++i) {
        Word v;
        std::memcpy(&v, bytes.data() + i * sizeof(Word), sizeof(Word));
        if ((v & exponent) == exponent) {
            c.first = static_cast<int64_t>(i);
            c.first_problem = (v & static_cast<Word>(~exponent) & static_cast<Word>(exponent - 1)) ? "NaN" : "Inf";
            break;
        }
    }
    return c;
}

DataCheck check_floats(TypeId t, std::span<const uint8_t> bytes) {
    switch (t) {
        case TypeId::F16: return scan<uint16_t>(bytes, 0x7c00);
        case TypeId::BF16: return scan<uint16_t>(bytes, 0x7f80);
        case TypeId::F32: return scan<uint32_t>(bytes, 0x7f800000u);
        case TypeId::F64: return scan<uint64_t>(bytes, 0x7ff0000000000000ull);
        default: return {};  // integers cannot be non-finite
    }
}

}  // namespace

DataCheck check_data(TypeId type, std::span<const uint8_t> bytes) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!info || info->retired) throw std::invalid_argument(fmt::format("type id {} has no layout", static_cast<uint32_t>(type)));
    if (bytes.size() % info->type_size != 0)
        throw std::invalid_argument(fmt::format("{} bytes are not whole {} blocks of {} bytes", bytes.size(), info->name, info->type_size));
    if (!info->quantized) return check_floats(type, bytes);
    DataCheck c;
    c.per_block = true;
    const ScaleField* scales = quant::traits(type)->scales;
    int fields = 0;
    while (fields < 4 && scales[fields].kind != ScaleKind::None) ++fields;
    const uint64_t blocks = bytes.size() / info->type_size;
    if (count_bad_blocks(bytes.data(), blocks, info->type_size, scales, fields) == 0) return c;
    for (uint64_t b = 0; b < blocks; ++b) {
        const uint8_t* block = bytes.data() + b * info->type_size;
        for (int k = 0; k < 4 && scales[k].kind != ScaleKind::None; ++k) {
            if (const char* what = problem(scales[k], block)) {
                if (c.bad++ == 0) {
                    const bool f16 = scales[k].kind == ScaleKind::F16 || scales[k].kind == ScaleKind::F16Nibbles;
                    c.first = static_cast<int64_t>(b);
                    c.first_problem = fmt::format("{} {} {}", f16 ? "f16" : "scale", scales[k].name, what);
                }
                break;
            }
        }
    }
    return c;
}

DataCheck check_data(TypeId type, std::span<const uint8_t> bytes, int threads) {
    const uint64_t block = quant::row_bytes(type, gguf::type_info(type).block_size);
    if (bytes.size() % block != 0) return check_data(type, bytes);  // reports the size
    std::vector<std::pair<int64_t, DataCheck>> parts;
    std::mutex parts_mutex;
    quant::RunOptions o;
    o.threads = std::max(1, threads);  // one range per thread: the merge below is what 1 and 2 threads compare
    quant::default_executor().run(static_cast<int64_t>(bytes.size() / block), [&](int64_t begin, int64_t end) {
        DataCheck c = check_data(type, bytes.subspan(static_cast<uint64_t>(begin) * block, static_cast<uint64_t>(end - begin) * block));
        if (c.first >= 0) c.first += begin;  // a block is one value for float types
        std::lock_guard lock(parts_mutex);
        parts.emplace_back(begin, std::move(c));
    }, o);
    std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    DataCheck total;
    total.per_block = gguf::type_info(type).quantized;
    for (const auto& [begin, c] : parts) total.merge(c);
    return total;
}

}  // namespace kernels
