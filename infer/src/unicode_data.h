// The generated Unicode tables (unicode_data.cpp, written by scripts/gen-unicode-tables).
#pragma once

#include <cstddef>
#include <cstdint>

namespace infer::unicode::data {

struct CategoryRun {
    uint32_t first;  // the run lasts until the next run's first code point
    uint8_t value;   // Category, | 0x80 when the code point is White_Space
};
struct CodePointPair {
    uint32_t from, to;
};
struct NfdRange {
    uint32_t first, last, to;
};

extern const CategoryRun kCategoryRuns[];
extern const size_t kCategoryRunCount;
extern const CodePointPair kLowercase[];
extern const size_t kLowercaseCount;
extern const NfdRange kNfdFirst[];
extern const size_t kNfdFirstCount;

}  // namespace infer::unicode::data
