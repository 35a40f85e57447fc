// floats, avx2 path. (No kernels yet: the scalar path serves these types.)
#include "table.h"

namespace kernels::avx2 {

void add_floats(detail::Table&) {}

}  // namespace kernels::avx2
