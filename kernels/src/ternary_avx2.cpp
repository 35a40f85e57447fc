// ternary, avx2 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx2 {

void add_ternary(detail::Table&) {}

}  // namespace kernels::avx2
