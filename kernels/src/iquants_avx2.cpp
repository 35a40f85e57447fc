// iquants, avx2 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx2 {

void add_iquants(detail::Table&) {}

}  // namespace kernels::avx2
