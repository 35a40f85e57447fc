#include "gguf/model.h"

#include <fmt/format.h>

#include <regex>

#include "name_index.h"

namespace gguf {

std::optional<SplitName> SplitName::parse(const std::filesystem::path& path) {
    static const std::regex pattern(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
    std::smatch m;
    const std::string s = path.string();
    if (!std::regex_match(s, m, pattern)) return std::nullopt;
    SplitName n{m[1].str(), static_cast<uint32_t>(std::stoul(m[2].str())), static_cast<uint32_t>(std::stoul(m[3].str()))};
    if (n.number < 1 || n.count < 1 || n.number > n.count) return std::nullopt;
    return n;
}

std::filesystem::path SplitName::path_of(uint32_t part) const {
    return fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, part, count);
}

namespace {

// An integer split key of `f`, checked against what the set says it must be.
void expect_split_key(const File& f, std::string_view key, uint64_t expected, std::string_view meaning) {
    const KeyValue* kv = f.find(key);
    if (!kv) throw Error(f.path(), std::nullopt, fmt::format("key '{}' is missing; {} expected", key, meaning));
    if (!kv->value.is_integer())
        throw Error(f.path(), kv->offset, fmt::format("key '{}' must be an integer, not {}", key, value_type_name(kv->value.type())));
    int64_t v = kv->value.as_int();
    if (v < 0 || static_cast<uint64_t>(v) != expected)
        throw Error(f.path(), kv->offset, fmt::format("key '{}' is {}, but {} is {}", key, v, meaning, expected));
}

}  // namespace

Model Model::open(const std::filesystem::path& path) {
    std::vector<File> parts;
    if (auto split = SplitName::parse(path)) {
        for (uint32_t n = 1; n <= split->count; ++n) {
            std::filesystem::path p = split->path_of(n);
            if (!std::filesystem::exists(p))
                throw Error(p.string(), std::nullopt, fmt::format("part {} of the {}-part split set is missing", n, split->count));
            parts.push_back(File::open(p));
        }
    } else {
        parts.push_back(File::open(path));
        const KeyValue* count = parts[0].find("split.count");
        if (count && count->value.is_integer() && count->value.as_int() > 1)
            throw Error(parts[0].path(), count->offset,
                        fmt::format("the file is one part of a {}-part split set, but its name does not follow "
                                    "PREFIX-NNNNN-of-MMMMM.gguf, so the other parts cannot be found",
                                    count->value.as_int()));
    }
    return from_parts(std::move(parts));
}

Model Model::from_parts(std::vector<File> parts) {
    if (parts.empty()) throw std::invalid_argument("Model::from_parts needs at least one file");
    Model m;
    m.parts_ = std::move(parts);
    const size_t n = m.parts_.size();
    if (m.is_split()) {
        uint64_t total = 0;
        for (const File& f : m.parts_) total += f.tensors().size();
        for (size_t i = 0; i < n; ++i) {
            const File& f = m.parts_[i];
            expect_split_key(f, "split.no", i, fmt::format("the 0-based number of part {} of {}", i + 1, n));
            expect_split_key(f, "split.count", n, "the number of parts");
            if (i == 0 || f.find("split.tensors.count"))
                expect_split_key(f, "split.tensors.count", total, "the number of tensors in all parts");
        }
    }
    m.index_tensors();
    return m;
}

void Model::index_tensors() {
    for (uint32_t p = 0; p < parts_.size(); ++p)
        for (const TensorInfo& t : parts_[p].tensors()) tensors_.push_back({&t, p});
    int64_t dup = detail::build_index(index_, static_cast<uint32_t>(tensors_.size()),
                                      [&](uint32_t i) { return tensors_[i].info->name; });
    if (dup >= 0) {
        const Tensor& t = tensors_[dup];
        const Tensor& first = *find_tensor(t.info->name);
        throw Error(parts_[t.part].path(), t.info->info_offset,
                    fmt::format("tensor '{}' is also in {}", t.info->name, parts_[first.part].path()));
    }
}

const Model::Tensor* Model::find_tensor(std::string_view name) const {
    int64_t i = detail::lookup(index_, name, [&](uint32_t j) { return tensors_[j].info->name; });
    return i < 0 ? nullptr : &tensors_[i];
}

uint64_t Model::total_size() const {
    uint64_t s = 0;
    for (const File& f : parts_) s += f.size();
    return s;
}

}  // namespace gguf
