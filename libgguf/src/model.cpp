#include "gguf/model.h"

#include <fmt/format.h>

#include <regex>

#include "gguf/http.h"
#include "name_index.h"

namespace gguf {

std::optional<SplitName> SplitName::parse(const std::filesystem::path& path) {
    static const std::regex pattern(R"((.*)-(\d{5})-of-(\d{5})(\.gguf(?:\.zst)?))");
    std::smatch m;
    const std::string s = path.string();
    if (!std::regex_match(s, m, pattern)) return std::nullopt;
    SplitName n{m[1].str(), static_cast<uint32_t>(std::stoul(m[2].str())), static_cast<uint32_t>(std::stoul(m[3].str())), m[4].str()};
    if (n.number < 1 || n.count < 1 || n.number > n.count) return std::nullopt;
    return n;
}

std::filesystem::path SplitName::path_of(uint32_t part) const {
    return fmt::format("{}-{:05d}-of-{:05d}{}", prefix, part, count, suffix);
}

namespace {

// Records a fault, or throws it as an Error when `faults` is null (strict).
void report(FaultLog* faults, Fault f) {
    if (!faults) {
        std::string message = f.subject.empty() ? f.message : fmt::format("key '{}' {}", f.subject, f.message);
        throw Error(f.file, f.file_offset, std::move(message));
    }
    faults->add(std::move(f));
}

// An integer split key of `f`, checked against what the set says it must be.
void expect_split_key(const File& f, std::string_view key, uint64_t expected, std::string_view meaning, FaultLog* faults) {
    const KeyValue* kv = f.find(key);
    if (!kv) return report(faults, {f.path(), std::nullopt, std::string(key), fmt::format("is missing; {} expected", meaning)});
    if (!kv->value.is_integer())
        return report(faults, {f.path(), kv->file_offset, std::string(key), fmt::format("must be an integer, not {}", value_type_name(kv->value.type()))});
    int64_t v = kv->value.as_int();
    if (v < 0 || static_cast<uint64_t>(v) != expected)
        report(faults, {f.path(), kv->file_offset, std::string(key), fmt::format("is {}, but {} is {}", v, meaning, expected)});
}

}  // namespace

Model Model::open(const std::filesystem::path& path) { return open_set(path, nullptr); }
Model Model::open(const std::filesystem::path& path, FaultLog& faults) { return open_set(path, &faults); }
Model Model::from_parts(std::vector<File> parts) {
    std::vector<uint32_t> numbers(parts.size());
    for (uint32_t i = 0; i < numbers.size(); ++i) numbers[i] = i + 1;
    const auto n = static_cast<uint32_t>(parts.size());
    return assemble(std::move(parts), std::move(numbers), n, nullptr);
}

Model Model::open_set(const std::filesystem::path& path, FaultLog* faults) {
    auto open_one = [&](const std::filesystem::path& p) { return faults ? File::open(p, *faults) : File::open(p); };
    std::vector<File> parts;
    std::vector<uint32_t> numbers;
    uint32_t count = 1;
    if (auto split = SplitName::parse(path)) {
        count = split->count;
        for (uint32_t n = 1; n <= split->count; ++n) {
            std::filesystem::path p = split->path_of(n);
            if (http::is_url(p.native())) {
                // Only a request tells whether a part is there; a lenient open goes on without it.
                try {
                    parts.push_back(open_one(p));
                } catch (const Error& e) {
                    if (!faults || n == split->number) throw;
                    report(faults, {p.string(), std::nullopt, {}, fmt::format("part {} of the {}-part split set cannot be read: {}", n, split->count, e.message())});
                    continue;
                }
                numbers.push_back(n);
                continue;
            }
            if (!std::filesystem::exists(p)) {
                report(faults, {p.string(), std::nullopt, {}, fmt::format("part {} of the {}-part split set is missing", n, split->count)});
                continue;
            }
            parts.push_back(open_one(p));
            numbers.push_back(n);
        }
        if (parts.empty()) throw Error(path.string(), std::nullopt, "no part of the split set could be found");
    } else {
        parts.push_back(open_one(path));
        numbers.push_back(1);
        const KeyValue* kv = parts[0].find("split.count");
        if (kv && kv->value.is_integer() && kv->value.as_int() > 1)
            report(faults, {parts[0].path(), kv->file_offset, {},
                            fmt::format("the file is one part of a {}-part split set, but its name does not follow "
                                        "PREFIX-NNNNN-of-MMMMM.gguf, so the other parts cannot be found",
                                        kv->value.as_int())});
    }
    return assemble(std::move(parts), std::move(numbers), count, faults);
}

Model Model::assemble(std::vector<File> parts, std::vector<uint32_t> numbers, uint32_t count, FaultLog* faults) {
    if (parts.empty()) throw std::invalid_argument("Model::from_parts needs at least one file");
    Model m;
    m.parts_ = std::move(parts);
    if (m.is_split()) {
        // The total is only known when no part is missing.
        const bool complete = m.parts_.size() == count;
        uint64_t total = 0;
        for (const File& f : m.parts_) total += f.tensors().size();
        for (size_t i = 0; i < m.parts_.size(); ++i) {
            const File& f = m.parts_[i];
            const uint32_t n = numbers[i];
            expect_split_key(f, "split.no", n - 1, fmt::format("the 0-based number of part {} of {}", n, count), faults);
            expect_split_key(f, "split.count", count, "the number of parts", faults);
            if (complete && (n == 1 || f.find("split.tensors.count")))
                expect_split_key(f, "split.tensors.count", total, "the number of tensors in all parts", faults);
        }
    }
    m.index_tensors(faults);
    return m;
}

void Model::index_tensors(FaultLog* faults) {
    for (uint32_t p = 0; p < parts_.size(); ++p)
        for (const TensorInfo& t : parts_[p].tensors()) tensors_.push_back({&t, p});
    detail::build_index(index_, static_cast<uint32_t>(tensors_.size()), [&](uint32_t i) { return tensors_[i].info->name; },
                        [&](uint32_t dup, uint32_t first) {
                            const Tensor& t = tensors_[dup];
                            if (t.part == tensors_[first].part) return;  // the part's own open reported it
                            const std::string& file = parts_[t.part].path();
                            const std::string message = fmt::format("is also in {}", parts_[tensors_[first].part].path());
                            if (!faults) throw Error(file, t.info->file_offset, fmt::format("tensor '{}' {}", t.info->name, message));
                            faults->add({file, t.info->file_offset, std::string(t.info->name), message});
                        });
}

const Model::Tensor* Model::find_tensor(std::string_view name) const {
    int64_t i = detail::lookup(index_, name, [&](uint32_t j) { return tensors_[j].info->name; });
    return i < 0 ? nullptr : &tensors_[i];
}

bool Model::is_split() const {
    if (parts_.size() > 1) return true;
    const KeyValue* kv = first().find("split.count");
    return kv && !(kv->value.is_integer() && kv->value.as_int() == 0);
}

uint64_t Model::total_size() const {
    uint64_t s = 0;
    for (const File& f : parts_) s += f.size();
    return s;
}

}  // namespace gguf
