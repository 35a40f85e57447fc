// iquants, avx512 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx512 {

void add_iquants(detail::Table&) {}

}  // namespace kernels::avx512
