#include "kernels/check_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "gguf/check.h"
#include "kernels/check.h"
#include "quant/byteorder.h"
#include "quant/quant.h"

namespace kernels {

namespace {

using gguf::Finding;
using Severity = Finding::Severity;

// One tensor's data, on several threads; the first problem located by row and column (or
// block, for quantized types).
void check_tensor(const gguf::Model& m, const gguf::Model::Tensor& t, int threads, std::vector<Finding>& out) {
    const gguf::TensorInfo& info = *t.info;
    if (!info.readable) return;  // its layout fault is reported
    DataCheck c;
    if (!m.parts()[t.part].big_endian()) {
        const std::span<const uint8_t> data = m.tensor_data(t);
        c = check_data(info.type, data, threads);
        m.release_pages(t, data);  // memory stays flat through the model (a .gguf.zst's or a URL's too)
    } else {
        // Big-endian data: its fields swapped to this machine's order a few MiB at a time.
        if (!quant::can_swap_byte_order(info.type)) {
            out.push_back({Severity::Warning, std::string(info.name),
                           fmt::format("big-endian {} data not checked (its block fields are not known here)", gguf::type_info(info.type).name)});
            return;
        }
        const std::span<const uint8_t> data = m.tensor_data(t);
        const gguf::TypeInfo& ti = gguf::type_info(info.type);
        const size_t step = std::max<size_t>(1, (size_t{16} << 20) / ti.type_size) * ti.type_size;
        std::vector<uint8_t> buffer;
        for (size_t at = 0; at < data.size(); at += step) {
            const auto piece = data.subspan(at, std::min(step, data.size() - at));
            buffer.assign(piece.begin(), piece.end());
            quant::swap_byte_order(info.type, buffer);
            DataCheck part = check_data(info.type, buffer, threads);
            // `first` counts blocks (quantized) or values (floats) from the piece's start.
            const auto blocks_before = static_cast<int64_t>(at / ti.type_size);
            if (part.first >= 0) part.first += part.per_block ? blocks_before : blocks_before * ti.block_size;
            c.merge(part);
        }
        m.release_pages(t, data);
    }
    if (c.bad == 0) return;
    const auto per_row = static_cast<int64_t>(info.shape[0] / (c.per_block ? gguf::type_info(info.type).block_size : 1));
    const char* s = c.bad == 1 ? "" : "s";
    const std::string what = c.per_block ? fmt::format("{} block{} with a non-finite scale", c.bad, s)
                                         : fmt::format("{} non-finite value{}", c.bad, s);
    out.push_back({Severity::Error, std::string(info.name), fmt::format("{}; first: row {}, {} {}: {}", what, c.first / per_row,
                                                                        c.per_block ? "block" : "column", c.first % per_row, c.first_problem)});
}

}  // namespace

ModelCheck check_model(const gguf::Model& m, const gguf::FaultLog& faults, bool data, int threads) {
    ModelCheck r;
    std::vector<Finding>& findings = r.findings;
    for (const gguf::Fault& f : faults.kept()) {
        // One file: the offset says where. A split set: the part's file too.
        std::string at = !f.subject.empty() && (m.parts().size() > 1 || f.file != m.first().path()) ? f.file : "";
        if (f.file_offset) at += fmt::format("{}file offset {}", at.empty() ? "" : ", ", *f.file_offset);
        findings.push_back({Severity::Error, f.subject.empty() ? f.file : f.subject, at.empty() ? f.message : fmt::format("{} ({})", f.message, at)});
    }
    for (Finding& f : gguf::check_metadata(m)) findings.push_back(std::move(f));
    for (const gguf::File& f : m.parts())
        for (Finding& x : gguf::check_layout(f)) findings.push_back(std::move(x));
    if (data) {
        const int n = quant::thread_count(threads);
        for (const gguf::Model::Tensor& t : m.tensors()) {
            try {
                check_tensor(m, t, n, findings);
            } catch (const gguf::Error& e) {  // a .gguf.zst frame that does not decompress: that tensor's finding, the rest go on
                const std::string prefix = fmt::format("tensor '{}': ", t.info->name);
                std::string message = e.message().starts_with(prefix) ? e.message().substr(prefix.size()) : e.message();
                if (e.offset()) message += fmt::format(" ({} offset {})", m.parts()[t.part].compressed() ? "container" : "file", *e.offset());
                findings.push_back({Severity::Error, std::string(t.info->name), message});
            }
        }
    }
    std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
    // Structural faults past the reader's FaultLog::kKeep are counted, not listed.
    r.unlisted = faults.total() - faults.kept().size();
    r.errors = r.unlisted + static_cast<uint64_t>(std::count_if(findings.begin(), findings.end(), [](const Finding& f) { return f.severity == Severity::Error; }));
    r.warnings = findings.size() + r.unlisted - r.errors;
    return r;
}

}  // namespace kernels
