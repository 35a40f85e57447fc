#include "quant/imatrix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include "gguf/file.h"
#include "gguf/writer.h"

namespace quant {

namespace {

constexpr std::string_view kSums = ".in_sum2", kCounts = ".counts";

std::vector<float> f32_values(const gguf::File& f, const gguf::TensorInfo& t) {
    if (t.type != gguf::TypeId::F32)
        throw gguf::Error(f.path(), t.file_offset, fmt::format("tensor '{}' must be f32, not {}", t.name, gguf::type_info(t.type).name));
    std::vector<float> v(t.n_elements);
    std::memcpy(v.data(), f.tensor_data(t).data(), v.size() * 4);
    return v;
}

uint32_t u32_key(const gguf::File& f, std::string_view key) {
    const gguf::KeyValue* kv = f.find(key);
    return kv && kv->value.is_integer() ? static_cast<uint32_t>(kv->value.as_uint()) : 0;
}

// Checks that an entry's numbers are usable; `where` names it in the message.
void validate(const ImatrixEntry& e, const std::string& file, std::optional<uint64_t> offset, std::string_view name) {
    if (e.counts.empty() || e.sums.empty() || e.sums.size() % e.counts.size() != 0)
        throw gguf::Error(file, offset, fmt::format("entry '{}': {} values do not divide into {} experts", name, e.sums.size(), e.counts.size()));
    for (size_t i = 0; i < e.counts.size(); ++i)
        if (!std::isfinite(e.counts[i]) || e.counts[i] < 0)
            throw gguf::Error(file, offset, fmt::format("entry '{}': count {} is {}", name, i, e.counts[i]));
    const size_t columns = e.columns();
    for (size_t i = 0; i < e.sums.size(); ++i)
        if (!std::isfinite(e.sums[i]) || e.sums[i] < 0)
            throw gguf::Error(file, offset, fmt::format("entry '{}': value {} (column {}) is {}", name, i, i % columns, e.sums[i]));
}

// The chunk count llama.cpp derives from the entries: the largest count over chunk size.
uint32_t chunks_from_counts(const std::map<std::string, ImatrixEntry, std::less<>>& entries, uint32_t chunk_size) {
    double most = 0;
    for (const auto& [name, e] : entries)
        for (float c : e.counts) most = std::max<double>(most, c);
    return chunk_size ? static_cast<uint32_t>(static_cast<uint64_t>(most) / chunk_size) : 0;
}

// A GGUF importance matrix says so (general.type "imatrix") or at least holds *.in_sum2
// tensors; a model file does neither.
bool is_imatrix_gguf(const gguf::File& f) {
    if (const gguf::KeyValue* t = f.find("general.type"); t && t->value.type() == gguf::ValueType::String && t->value.str() == "imatrix")
        return true;
    return std::any_of(f.tensors().begin(), f.tensors().end(), [](const gguf::TensorInfo& t) { return t.name.ends_with(kSums); });
}

ImportanceMatrix load_gguf(const std::filesystem::path& path) {
    const gguf::File f = gguf::File::open(path);
    if (!is_imatrix_gguf(f))
        throw gguf::Error(f.path(), std::nullopt,
                          fmt::format("not an importance matrix: no general.type 'imatrix' and no '*{}' tensors (a model file?)", kSums));
    if (f.big_endian()) throw gguf::Error(f.path(), std::nullopt, "big-endian importance files are not supported");
    ImportanceMatrix m;
    m.format = ImatrixFormat::Gguf;
    m.chunk_count = u32_key(f, "imatrix.chunk_count");
    m.chunk_size = u32_key(f, "imatrix.chunk_size");
    if (const gguf::KeyValue* d = f.find("imatrix.datasets"); d && d->value.type() == gguf::ValueType::Array &&
                                                              d->value.array().element_type() == gguf::ValueType::String)
        for (gguf::Value s : d->value.array()) m.datasets.emplace_back(s.str());

    for (const gguf::TensorInfo& t : f.tensors()) {
        const std::string_view name = t.name;
        if (name.ends_with(kCounts)) {
            if (!f.find_tensor(std::string(name.substr(0, name.size() - kCounts.size())) + std::string(kSums)))
                throw gguf::Error(f.path(), t.file_offset, fmt::format("tensor '{}' has no matching {} tensor", name, kSums));
            continue;
        }
        if (!name.ends_with(kSums)) continue;
        const std::string weight_name(name.substr(0, name.size() - kSums.size()));
        const gguf::TensorInfo* counts_info = f.find_tensor(weight_name + std::string(kCounts));
        if (!counts_info) throw gguf::Error(f.path(), t.file_offset, fmt::format("tensor '{}' has no matching {} tensor", name, kCounts));
        ImatrixEntry e{f32_values(f, t), f32_values(f, *counts_info)};
        validate(e, f.path(), t.file_offset, weight_name);
        m.set(weight_name, std::move(e));
    }
    return m;
}

// Reads little-endian fields from a legacy file's bytes, naming the offset of what is
// missing or wrong.
struct LegacyReader {
    const std::string& file;
    const std::vector<uint8_t>& bytes;
    size_t at = 0;

    bool has(size_t n) const { return bytes.size() - at >= n; }
    int32_t i32(std::string_view what) {
        if (!has(4)) throw gguf::Error(file, at, fmt::format("file ends where {} should be", what));
        int32_t v;
        std::memcpy(&v, bytes.data() + at, 4);
        at += 4;
        return v;
    }
    std::string text(int32_t length, std::string_view what) {
        if (length < 0 || !has(static_cast<size_t>(length)))
            throw gguf::Error(file, at - 4, fmt::format("{} of {} bytes does not fit in the file", what, length));
        std::string s(reinterpret_cast<const char*>(bytes.data() + at), static_cast<size_t>(length));
        at += static_cast<size_t>(length);
        return s;
    }
};

ImportanceMatrix load_legacy(const std::filesystem::path& path, const std::vector<uint8_t>& bytes, uint32_t chunk_size) {
    const std::string file = path.string();
    LegacyReader r{file, bytes};
    ImportanceMatrix m;
    m.format = ImatrixFormat::Legacy;
    m.chunk_size = chunk_size;
    // Each entry takes at least 17 bytes (three counts, a name, a value). A count past 2^24
    // that cannot fit is some other kind of file (four letters of text read ~0x20202020 or
    // more), not a truncated importance matrix, whose count is a model's tensor count.
    const int32_t n = r.i32("the entry count");
    if (n < 1 || (n > (1 << 24) && static_cast<uint64_t>(n) * 17 > bytes.size()))
        throw gguf::Error(file, 0, fmt::format("not an importance matrix: neither GGUF nor llama.cpp's legacy format (its first 4 bytes, "
                                               "the entry count, read {} in a file of {} bytes)", n, bytes.size()));
    for (int32_t i = 0; i < n; ++i) {
        const size_t entry_at = r.at;
        std::string name = r.text(r.i32("the name length of an entry"), fmt::format("the name of entry {}", i));
        const int32_t calls = r.i32(fmt::format("the call count of entry '{}'", name));
        const int32_t values = r.i32(fmt::format("the value count of entry '{}'", name));
        if (calls < 0) throw gguf::Error(file, r.at - 8, fmt::format("entry '{}': call count {} is negative", name, calls));
        if (values < 1 || !r.has(static_cast<size_t>(values) * 4))
            throw gguf::Error(file, r.at - 4, fmt::format("entry '{}': {} values do not fit in the file", name, values));
        // Stored: mean x calls. Back to sums and counts as llama.cpp reads them: each call
        // stands for one chunk of `chunk_size` rows.
        ImatrixEntry e;
        e.sums.resize(static_cast<size_t>(values));
        std::memcpy(e.sums.data(), bytes.data() + r.at, e.sums.size() * 4);
        r.at += e.sums.size() * 4;
        for (float& v : e.sums) v *= static_cast<float>(chunk_size);
        e.counts = {static_cast<float>(static_cast<uint64_t>(calls) * chunk_size)};
        validate(e, file, entry_at, name);
        if (m.find(name)) throw gguf::Error(file, entry_at, fmt::format("entry '{}' appears twice", name));
        m.set(std::move(name), std::move(e));
    }
    // Then the chunk count and the dataset's name; older files may end before either.
    m.chunk_count = r.has(4) ? static_cast<uint32_t>(std::max(0, r.i32("the chunk count"))) : chunks_from_counts(m.entries(), chunk_size);
    if (r.has(4)) m.datasets.push_back(r.text(r.i32("the dataset name length"), "the dataset name"));
    return m;
}

// Writes `bytes` to a temporary file beside `path`, renamed into place when complete.
void write_atomically(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::filesystem::path temp = path;
    temp += ".tmp";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            std::error_code ec;
            std::filesystem::remove(temp, ec);
            throw gguf::Error(path.string(), std::nullopt, "cannot write the file (disk full or not writable); nothing was written");
        }
    }
    std::filesystem::rename(temp, path);
}

void append_i32(std::vector<uint8_t>& out, int32_t v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + 4);
}

}  // namespace

std::vector<float> ImatrixEntry::importance() const {
    std::vector<float> w = sums;
    const size_t n = columns();
    for (size_t e = 0; e < counts.size(); ++e)
        for (size_t c = 0; c < n; ++c) {
            float& v = w[e * n + c];
            v = counts[e] > 0 ? v / counts[e] : 1.0f;
        }
    return w;
}

ImatrixStats stats(const ImatrixEntry& e, const std::vector<float>& importance, uint32_t chunk_size, size_t top) {
    ImatrixStats s;
    if (!e.counts.empty() && chunk_size) s.chunks = *std::max_element(e.counts.begin(), e.counts.end()) / static_cast<double>(chunk_size);
    if (importance.empty()) return s;
    s.mean = std::accumulate(importance.begin(), importance.end(), 0.0) / static_cast<double>(importance.size());
    s.max = *std::max_element(importance.begin(), importance.end());
    s.top.resize(importance.size());
    std::iota(s.top.begin(), s.top.end(), size_t{0});
    const size_t k = std::min(s.top.size(), top);
    const auto more_important = [&](size_t a, size_t b) { return importance[a] > importance[b] || (importance[a] == importance[b] && a < b); };
    std::partial_sort(s.top.begin(), s.top.begin() + static_cast<std::ptrdiff_t>(k), s.top.end(), more_important);
    s.top.resize(k);
    return s;
}

ImportanceMatrix ImportanceMatrix::load(const std::filesystem::path& path, uint32_t legacy_chunk_size) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw gguf::Error(path.string(), std::nullopt, "is a directory, not an importance matrix");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw gguf::Error(path.string(), std::nullopt, fmt::format("cannot open the file: {}", std::strerror(errno)));
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return load_gguf(path);
    in.clear();
    in.seekg(0);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    return load_legacy(path, bytes, legacy_chunk_size);
}

void ImportanceMatrix::set(std::string name, ImatrixEntry entry) {
    weights_[name] = entry.importance();
    entries_[std::move(name)] = std::move(entry);
}

const std::vector<float>* ImportanceMatrix::find(std::string_view name) const {
    auto it = weights_.find(name);
    return it == weights_.end() ? nullptr : &it->second;
}

void ImportanceMatrix::merge(const ImportanceMatrix& other) {
    if (chunk_size == 0) chunk_size = other.chunk_size;
    for (const auto& [name, theirs] : other.entries_) {
        auto it = entries_.find(name);
        if (it == entries_.end()) {
            set(name, theirs);
            continue;
        }
        ImatrixEntry e = it->second;
        if (e.sums.size() != theirs.sums.size())
            throw std::invalid_argument(fmt::format("entry '{}': {} values in one file, {} in another", name, e.sums.size(), theirs.sums.size()));
        std::vector<float> counts = theirs.counts;
        if (e.counts.size() == 1 && counts.size() > 1) e.counts.resize(counts.size(), e.counts[0]);
        if (counts.size() == 1 && e.counts.size() > 1) counts.resize(e.counts.size(), counts[0]);
        if (counts.size() != e.counts.size())
            throw std::invalid_argument(fmt::format("entry '{}': {} experts in one file, {} in another", name, e.counts.size(), counts.size()));
        for (size_t i = 0; i < e.sums.size(); ++i) e.sums[i] += theirs.sums[i];
        for (size_t i = 0; i < counts.size(); ++i) e.counts[i] += counts[i];
        set(name, std::move(e));
    }
    datasets.insert(datasets.end(), other.datasets.begin(), other.datasets.end());
    chunk_count = chunks_from_counts(entries_, chunk_size);
}

void ImportanceMatrix::save(const std::filesystem::path& path, ImatrixFormat to) const {
    if (to == ImatrixFormat::Gguf) {
        gguf::Writer w;
        w.set("general.type", gguf::OwnedValue::string("imatrix"));
        w.set("imatrix.datasets", gguf::OwnedValue::strings(datasets));
        w.set("imatrix.chunk_count", gguf::OwnedValue::u32(chunk_count));
        w.set("imatrix.chunk_size", gguf::OwnedValue::u32(chunk_size));
        for (const auto& [name, e] : entries_) {  // sorted by name, as llama.cpp writes them
            const auto columns = static_cast<uint64_t>(e.columns()), experts = static_cast<uint64_t>(e.experts());
            // One expert: 1-D shapes (ggml drops trailing dimensions of 1).
            std::vector<uint64_t> sums_shape{columns}, counts_shape{1};
            if (experts > 1) {
                sums_shape.push_back(experts);
                counts_shape.push_back(experts);
            }
            w.add_tensor(name + std::string(kSums), gguf::TypeId::F32, sums_shape,
                         std::span(reinterpret_cast<const uint8_t*>(e.sums.data()), e.sums.size() * 4));
            w.add_tensor(name + std::string(kCounts), gguf::TypeId::F32, counts_shape,
                         std::span(reinterpret_cast<const uint8_t*>(e.counts.data()), e.counts.size() * 4));
        }
        w.write(path);
        return;
    }
    // Legacy: per entry its mean scaled by a call count (chunks, rounded up), as llama.cpp's
    // legacy writer stores it; an expert never reached stores 1 x calls.
    if (chunk_size == 0) throw std::invalid_argument("the chunk size is unknown (0): give one to write the legacy format");
    std::vector<uint8_t> out;
    append_i32(out, static_cast<int32_t>(entries_.size()));
    for (const auto& [name, e] : entries_) {
        append_i32(out, static_cast<int32_t>(name.size()));
        out.insert(out.end(), name.begin(), name.end());
        const auto most = static_cast<uint64_t>(*std::max_element(e.counts.begin(), e.counts.end()));
        const auto calls = static_cast<int32_t>((most + chunk_size - 1) / chunk_size);
        append_i32(out, calls);
        append_i32(out, static_cast<int32_t>(e.sums.size()));
        const size_t columns = e.columns();
        for (size_t i = 0; i < e.sums.size(); ++i) {
            float count = e.counts[i / columns], value = e.sums[i];
            if (count == 0.0f) value = count = 1.0f;
            const float stored = (value / count) * static_cast<float>(calls);
            const auto* p = reinterpret_cast<const uint8_t*>(&stored);
            out.insert(out.end(), p, p + 4);
        }
    }
    append_i32(out, static_cast<int32_t>(chunk_count));
    const std::string dataset = datasets.empty() ? std::string() : datasets.back();
    append_i32(out, static_cast<int32_t>(dataset.size()));
    out.insert(out.end(), dataset.begin(), dataset.end());
    write_atomically(path, out);
}

}  // namespace quant
