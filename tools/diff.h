// gguf diff: what differs between two models, key by key and tensor by tensor (gguf/diff.h,
// kernels::compare_rows); --diffable: one model as stable lines for diff(1). Printing only.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_diff(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
