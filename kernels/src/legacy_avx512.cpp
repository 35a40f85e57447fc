// legacy, avx512 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx512 {

void add_legacy(detail::Table&) {}

}  // namespace kernels::avx512
