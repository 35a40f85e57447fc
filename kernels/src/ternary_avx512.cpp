// ternary, avx512 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx512 {

void add_ternary(detail::Table&) {}

}  // namespace kernels::avx512
