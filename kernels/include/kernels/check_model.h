// What `gguf check` reports on a model: the structural faults a lenient open recorded, the
// metadata and layout checks (gguf/check.h), and the data pass (kernels/check.h) on every
// tensor. The command and the Python package (ggufkit.check) both print these.
#pragma once

#include <cstdint>
#include <vector>

#include "gguf/check.h"
#include "gguf/file.h"
#include "gguf/model.h"

namespace kernels {

struct ModelCheck {
    std::vector<gguf::Finding> findings;  // errors first, then warnings, each in the order found
    uint64_t errors = 0, warnings = 0;    // exact counts, the unlisted faults among the errors
    uint64_t unlisted = 0;                // structural faults past FaultLog's kept ones: counted, not listed
};

// `m` opened leniently into `faults`. With `data`, every tensor's data is scanned on
// `threads` threads (0: one per core); a .gguf.zst frame that does not decompress is that
// tensor's finding.
ModelCheck check_model(const gguf::Model& m, const gguf::FaultLog& faults, bool data, int threads);

}  // namespace kernels
