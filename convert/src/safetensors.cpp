#include "convert/safetensors.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

namespace convert {

namespace {

struct DtypeInfo {
    Dtype dtype;
    std::string_view name;
    uint32_t bits;
};
constexpr std::array<DtypeInfo, 17> kDtypes{{{Dtype::F64, "F64", 64},     {Dtype::F32, "F32", 32},         {Dtype::F16, "F16", 16},
                                             {Dtype::BF16, "BF16", 16},    {Dtype::I64, "I64", 64},         {Dtype::I32, "I32", 32},
                                             {Dtype::I16, "I16", 16},      {Dtype::I8, "I8", 8},            {Dtype::U64, "U64", 64},
                                             {Dtype::U32, "U32", 32},      {Dtype::U16, "U16", 16},         {Dtype::U8, "U8", 8},
                                             {Dtype::Bool, "BOOL", 8},     {Dtype::F8_E4M3, "F8_E4M3", 8},  {Dtype::F8_E5M2, "F8_E5M2", 8},
                                             {Dtype::F8_E8M0, "F8_E8M0", 8}, {Dtype::F4, "F4", 4}}};

[[noreturn]] void fail(const std::string& file, const std::string& what) { throw std::runtime_error(file + ": " + what); }

std::string read_file(const std::filesystem::path& p) {
    const gguf::Mapping m(p);
    return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.bytes().size());
}

}  // namespace

std::string_view dtype_name(Dtype d) { return kDtypes[static_cast<size_t>(d)].name; }
uint32_t dtype_bits(Dtype d) { return kDtypes[static_cast<size_t>(d)].bits; }

void release_pages(std::span<const uint8_t> bytes) {
    static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto first = reinterpret_cast<uintptr_t>(bytes.data());
    const uintptr_t begin = (first + page - 1) / page * page, end = (first + bytes.size()) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

uint64_t SafeTensor::elements() const {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return n;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
    SafetensorsFile f;
    f.path_ = std::make_unique<std::filesystem::path>(path);
    f.mapping_ = std::make_unique<gguf::Mapping>(path);
    f.read(f.mapping_->bytes());
    return f;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, std::string name) {
    SafetensorsFile f;
    f.path_ = std::make_unique<std::filesystem::path>(std::move(name));
    f.read(bytes);
    return f;
}

void SafetensorsFile::read(std::span<const uint8_t> bytes) {
    const std::string file = path_->string();
    if (bytes.size() < 8) fail(file, fmt::format("{} bytes: too short for a safetensors header length", bytes.size()));
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | bytes[static_cast<size_t>(i)];
    if (n > bytes.size() - 8) fail(file, fmt::format("offset 0: header length {} runs past the end of the file ({} bytes)", n, bytes.size()));
    constexpr uint64_t kMaxHeader = 100'000'000;  // the safetensors reference's own limit
    if (n > kMaxHeader) fail(file, fmt::format("offset 0: header length {} is over the format's limit of {} bytes", n, kMaxHeader));
    const std::span<const uint8_t> data = bytes.subspan(8 + n);
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    const simdjson::padded_string header(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n));
    if (const auto error = parser.parse(header).get(root))
        fail(file, fmt::format("offset 8: the header is not valid JSON ({})", simdjson::error_message(error)));
    simdjson::dom::object object;
    if (root.get(object)) fail(file, "offset 8: the header is not a JSON object");
    for (const auto field : object) {
        const std::string name(field.key);
        if (name == "__metadata__") {
            simdjson::dom::object meta;
            if (field.value.get(meta)) fail(file, "__metadata__ is not an object");
            for (const auto m : meta) {
                std::string_view v;
                if (m.value.get(v)) fail(file, fmt::format("__metadata__.{} is not a string", std::string_view(m.key)));
                metadata_.emplace(std::string(m.key), std::string(v));
            }
            continue;
        }
        const auto where = [&](const std::string& what) { fail(file, fmt::format("tensor {}: {}", name, what)); };
        SafeTensor t;
        t.name = name;
        t.file = path_.get();
        std::string_view dtype;
        if (field.value["dtype"].get(dtype)) where("no dtype string");
        const auto known = std::find_if(kDtypes.begin(), kDtypes.end(), [&](const DtypeInfo& d) { return d.name == dtype; });
        if (known == kDtypes.end()) where(fmt::format("unknown dtype '{}'", dtype));
        t.dtype = known->dtype;
        simdjson::dom::array shape, offsets;
        if (field.value["shape"].get(shape)) where("no shape array");
        for (const auto d : shape) {
            uint64_t v;
            if (d.get(v)) where("a shape entry is not a non-negative integer");
            t.shape.push_back(v);
        }
        if (field.value["data_offsets"].get(offsets) || offsets.size() != 2) where("no data_offsets [begin, end]");
        uint64_t begin = 0, end = 0;
        if (offsets.at(0).get(begin) || offsets.at(1).get(end)) where("data_offsets are not non-negative integers");
        if (begin > end || end > data.size())
            where(fmt::format("data_offsets [{}, {}] outside the {} data bytes", begin, end, data.size()));
        // The element count, refusing a product that overflows.
        // The element count and bit count, refusing any product that overflows.
        uint64_t elements = 1, bits = 0;
        for (uint64_t d : t.shape)
            if (__builtin_mul_overflow(elements, d, &elements)) where("its shape has more elements than 2^64");
        if (__builtin_mul_overflow(elements, uint64_t{dtype_bits(t.dtype)}, &bits)) where("its shape has more bits than 2^64");
        if (bits % 8 || bits / 8 != end - begin)
            where(fmt::format("{} bytes for {} {} values", end - begin, elements, dtype));
        t.data = data.subspan(begin, end - begin);
        tensors_.push_back(std::move(t));
    }
    std::vector<std::string_view> names;
    for (const SafeTensor& t : tensors_) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    if (const auto twice = std::adjacent_find(names.begin(), names.end()); twice != names.end())
        fail(file, fmt::format("tensor {} appears twice in the header", *twice));
    std::sort(tensors_.begin(), tensors_.end(), [](const SafeTensor& a, const SafeTensor& b) { return a.data.data() < b.data.data(); });
    for (size_t i = 1; i < tensors_.size(); ++i)
        if (tensors_[i - 1].data.data() + tensors_[i - 1].data.size() > tensors_[i].data.data())
            fail(file, fmt::format("tensors {} and {} overlap", tensors_[i - 1].name, tensors_[i].name));
}

void SafetensorsFile::release_pages() const {
    if (mapping_) convert::release_pages(mapping_->bytes());
}

void Checkpoint::release_pages() const {
    for (const SafetensorsFile& f : files_) f.release_pages();
}

const SafeTensor* Checkpoint::find(std::string_view name) const {
    const auto it = by_name_.find(std::string(name));
    return it == by_name_.end() ? nullptr : it->second;
}

Checkpoint Checkpoint::open(const std::filesystem::path& folder) {
    Checkpoint c;
    c.folder_ = folder;
    const std::filesystem::path single = folder / "model.safetensors", index = folder / "model.safetensors.index.json";
    std::map<std::string, std::string> weight_map;  // tensor -> shard file name
    if (std::filesystem::exists(index)) {
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        const simdjson::padded_string text(read_file(index));
        if (parser.parse(text).get(root)) fail(index.string(), "not valid JSON");
        simdjson::dom::object map;
        if (root["weight_map"].get(map)) fail(index.string(), "no weight_map object");
        for (const auto entry : map) {
            std::string_view shard;
            if (entry.value.get(shard)) fail(index.string(), fmt::format("weight_map.{} is not a file name", std::string_view(entry.key)));
            if (shard.find('/') != std::string_view::npos || shard == ".." || shard.empty())
                fail(index.string(), fmt::format("weight_map.{}: '{}' is not a file in the folder", std::string_view(entry.key), shard));
            weight_map.emplace(std::string(entry.key), std::string(shard));
        }
        std::vector<std::string> shards;
        for (const auto& [tensor, shard] : weight_map)
            if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
        std::sort(shards.begin(), shards.end());
        for (const std::string& shard : shards) c.files_.push_back(SafetensorsFile::open(folder / shard));
    } else if (std::filesystem::exists(single)) {
        c.files_.push_back(SafetensorsFile::open(single));
    } else {
        fail(folder.string(), "no model.safetensors or model.safetensors.index.json");
    }
    for (const SafetensorsFile& f : c.files_)
        for (const SafeTensor& t : f.tensors()) {
            if (!weight_map.empty()) {
                const auto it = weight_map.find(t.name);
                if (it == weight_map.end() || f.path().filename() != it->second) continue;  // the index decides where a tensor lives
            }
            const auto [at, inserted] = c.by_name_.emplace(t.name, &t);
            if (!inserted) fail(f.path().string(), fmt::format("tensor {} is also in {}", t.name, at->second->file->string()));
        }
    for (const auto& [tensor, shard] : weight_map)
        if (!c.by_name_.count(tensor)) fail((folder / shard).string(), fmt::format("tensor {} is not in it, as the index says", tensor));
    return c;
}

}  // namespace convert
