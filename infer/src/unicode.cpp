#include "unicode.h"

#include <algorithm>
#include <memory>

#include "unicode_data.h"

namespace infer::unicode {

namespace {

constexpr uint32_t kCodePoints = 0x110000;

// The runs expanded once into one byte per code point (1.1 MB): a lookup is one load.
const uint8_t* property_table() {
    static const std::unique_ptr<uint8_t[]> table = [] {
        auto t = std::make_unique<uint8_t[]>(kCodePoints);
        for (size_t i = 0; i < data::kCategoryRunCount; ++i) {
            const uint32_t end = i + 1 < data::kCategoryRunCount ? data::kCategoryRuns[i + 1].first : kCodePoints;
            std::fill(t.get() + data::kCategoryRuns[i].first, t.get() + end, data::kCategoryRuns[i].value);
        }
        return t;
    }();
    return table.get();
}

}  // namespace

uint8_t properties(uint32_t cp) {
    static const uint8_t* table = property_table();
    return cp < kCodePoints ? table[cp] : uint8_t{Cn};
}

uint32_t to_lower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    const auto* begin = data::kLowercase;
    const auto* end = begin + data::kLowercaseCount;
    const auto* it = std::lower_bound(begin, end, cp, [](const data::CodePointPair& p, uint32_t c) { return p.from < c; });
    return (it != end && it->from == cp) ? it->to : cp;
}

uint32_t nfd_first(uint32_t cp) {
    if (cp < 0xC0) return cp;
    const auto* begin = data::kNfdFirst;
    const auto* end = begin + data::kNfdFirstCount;
    const auto* it = std::upper_bound(begin, end, cp, [](uint32_t c, const data::NfdRange& r) { return c < r.first; });
    if (it == begin) return cp;
    --it;
    return (cp <= it->last) ? it->to : cp;
}

uint32_t decode_one(std::string_view s, size_t& pos) {
    const auto b0 = static_cast<uint8_t>(s[pos]);
    if (b0 < 0x80) {
        ++pos;
        return b0;
    }
    const size_t n = sequence_length(b0);
    if (n == 1 || pos + n > s.size()) {
        ++pos;
        return kReplacement;
    }
    uint32_t cp = b0 & (0x7F >> n);
    for (size_t i = 1; i < n; ++i) {
        const auto b = static_cast<uint8_t>(s[pos + i]);
        if ((b & 0xC0) != 0x80) {
            ++pos;
            return kReplacement;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    pos += n;
    return cp;
}

std::vector<uint32_t> decode(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) out.push_back(decode_one(s, pos));
    return out;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace infer::unicode
