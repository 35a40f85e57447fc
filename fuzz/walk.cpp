#include "walk.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "gguf/check.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "gguf/render.h"
#include "gguf/summary.h"
#include "gguf/writer.h"
#include "gguf/zst.h"
#include "kernels/check.h"
#include "quant/quant.h"

namespace gguf::fuzz {

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
}

// Folds every byte a value exposes into `sink`, so nothing is optimised away and ASan sees
// each access.
void walk_value(const Value& v, uint64_t& sink) {
    switch (v.type()) {
    case ValueType::String: {
        const std::string_view s = v.str();
        for (char c : s) sink += static_cast<uint8_t>(c);
        break;
    }
    case ValueType::Array: {
        const ArrayView a = v.array();
        uint64_t n = 0;
        for (Value e : a) {
            walk_value(e, sink);
            ++n;
        }
        if (n != a.size()) fail("array iteration count differs from its size");
        if (a.size() > 0 && value_type_size(a.element_type()) != 0) walk_value(a.at(a.size() - 1), sink);
        break;
    }
    case ValueType::Bool: sink += v.boolean(); break;
    default: sink += v.raw_bits(); break;
    }
}

uint64_t walk_file(const File& f) {
    uint64_t sink = 0;
    for (const KeyValue& kv : f.kvs()) {
        if (f.find(kv.key) == nullptr) fail("a key is not found by name");
        walk_value(kv.value, sink);
    }
    for (const TensorInfo& t : f.tensors()) {
        if (f.find_tensor(t.name) == nullptr) fail("a tensor is not found by name");
        const std::span<const uint8_t> d = f.tensor_data(t);
        if (t.readable && d.size() != t.n_bytes) fail("tensor data size differs from n_bytes");
        if (!d.empty()) {
            if (d.data() < f.bytes().data() || d.data() + d.size() > f.bytes().data() + f.bytes().size())
                fail("tensor data outside the file");
            sink += d.front() + d.back();
        }
    }
    return sink;
}

// Written again, the file must read back with the same keys, values and tensors.
void round_trip(const File& f) {
    // The copy is as large as the tensors plus the padding the alignment asks for (a valid
    // alignment of 2^31 pads a 60-byte file to 2 GiB): copies beyond 1 MiB are not made.
    uint64_t total = f.alignment();
    for (const TensorInfo& t : f.tensors()) total += t.n_bytes + f.alignment();
    if (f.alignment() > (1u << 16) || total > (1u << 20)) return;
    const std::vector<uint8_t> again = Writer::copy_of(f).write_to_memory();
    const File g = File::parse(again, "copy");
    if (g.kvs().size() != f.kvs().size() || g.tensors().size() != f.tensors().size()) fail("copy has other counts");
    for (size_t i = 0; i < f.kvs().size(); ++i) {
        const KeyValue &a = f.kvs()[i], &b = g.kvs()[i];
        uint64_t sa = 0, sb = 0;
        walk_value(a.value, sa);
        walk_value(b.value, sb);
        if (a.key != b.key || a.value.type() != b.value.type() || sa != sb) fail("copy has another key or value");
    }
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const TensorInfo &a = f.tensors()[i], &b = g.tensors()[i];
        if (a.name != b.name || a.type != b.type || a.shape != b.shape) fail("copy has another tensor info");
        const auto da = f.tensor_data(a), db = g.tensor_data(b);
        if (!std::equal(da.begin(), da.end(), db.begin(), db.end())) fail("copy has other tensor data");
    }
}

volatile uint64_t g_sink;

}  // namespace

void open_and_walk(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> bytes(data, size);
    bool strict_ok = false;
    try {
        File f = File::parse(bytes, "input");
        strict_ok = true;
        g_sink = g_sink + walk_file(f);
        round_trip(f);
    } catch (const Error&) {
    }
    FaultLog faults;
    try {
        File f = File::parse(bytes, "input", faults);
        if (strict_ok && !faults.empty()) fail("lenient open found faults the strict open accepted");
        if (!strict_ok && faults.empty()) fail("strict open failed, lenient open found nothing and did not throw");
        g_sink = g_sink + walk_file(f);
        std::vector<File> parts;
        parts.push_back(std::move(f));
        const Model m = Model::from_parts(std::move(parts));
        for (const Finding& finding : check_metadata(m)) g_sink = g_sink + finding.message.size();
        for (const Finding& finding : check_layout(m.first())) g_sink = g_sink + finding.message.size();
        for (const KeyValue& kv : m.kvs()) g_sink = g_sink + value_text(kv.value, 8).size();  // as gguf inspect shows them
        g_sink = g_sink + summarize(m).tensor_bytes;
    } catch (const Error&) {
    }
}

void check_and_dequantize(const uint8_t* data, size_t size) {
    if (size < 1) return;
    const TypeInfo* type = find_type(data[0] % kTypeCount);
    if (!type || type->retired) return;
    std::span<const uint8_t> bytes(data + 1, size - 1);
    bytes = bytes.first(bytes.size() / type->type_size * type->type_size);
    const kernels::DataCheck one = kernels::check_data(type->id, bytes, 1);
    const kernels::DataCheck two = kernels::check_data(type->id, bytes, 2);
    if (one.bad != two.bad || (one.bad && one.first != two.first)) fail("check_data differs between 1 and 2 threads");
    if (!quant::can_dequantize(type->id)) return;
    std::vector<float> out(bytes.size() / type->type_size * type->block_size);
    quant::dequantize(type->id, bytes, out);
    uint64_t nonfinite = 0;
    for (float x : out) nonfinite += !std::isfinite(x);
    g_sink = g_sink + nonfinite;
}

void read_container(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> bytes(data, size);
    try {
        const zst::Container c = zst::Container::from_bytes(bytes, "input");
        uint64_t offset = 0;
        for (const zst::Frame& f : c.frames()) {
            if (f.offset != offset) fail("frames do not follow each other in the original file");
            if (f.at + f.compressed > size) fail("a frame lies past the container");
            offset += f.size;
        }
        if (offset != c.original_size()) fail("the frames' sizes do not add up to the original size");
        // Each frame that a harness can afford (the seek table may claim gigabytes).
        std::vector<uint8_t> out;
        for (size_t i = 0; i < c.frames().size() && i < 64; ++i) {
            if (c.frames()[i].size > (size_t{1} << 22)) continue;
            out.resize(c.frames()[i].size);
            try {
                c.read_frame(i, out);
                for (uint8_t b : out) g_sink = g_sink + b;
            } catch (const Error&) {
            }
        }
    } catch (const Error&) {
    }
}

}  // namespace gguf::fuzz
