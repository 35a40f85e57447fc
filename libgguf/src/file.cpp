#include "gguf/file.h"

#include "gguf/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "byte_order.h"
#include "gguf/mapping.h"
#include "gguf/zst.h"
#include "http_source.h"
#include "name_index.h"

namespace gguf {

namespace {

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// What is being read, for error messages, assembled only when one is needed:
// a, then the number n if it has one, then b and c ("key 3", "array of u32: count").
struct What {
    std::string_view a;
    std::optional<uint64_t> n = std::nullopt;
    std::string_view b = {};
    std::string_view c = {};
    std::string str() const { return n ? fmt::format("{}{}{}{}", a, *n, b, c) : fmt::format("{}{}{}", a, b, c); }
};

// Thrown by the Cursor when what it reads lies past the bytes fetched so far but inside the
// file (a URL's header read in growing steps): the parse starts again with `end` bytes.
struct NeedMore {
    uint64_t end;
};

// Bounds-checked reading of numbers and strings from the file's bytes. `bytes` are those
// available now, a prefix of the file's `file_size` bytes: counts and lengths are checked
// against the file, reads against what is available (NeedMore past it).
class Cursor {
public:
    Cursor(std::span<const uint8_t> bytes, uint64_t file_size, const std::string& path)
        : bytes_(bytes), file_size_(file_size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return file_size_ - pos_; }
    const uint8_t* here() const { return bytes_.data() + pos_; }
    void skip(uint64_t n) { pos_ += n; }
    void set_encoding(Encoding e) { enc_ = e; }
    Encoding encoding() const { return enc_; }

    // The item being read, for error messages: "key 'general.name'", "tensor 'output.weight'".
    void set_context(std::string_view kind, std::string_view name) { kind_ = kind; name_ = name; }
    void clear_context() { kind_ = {}; }

    [[noreturn]] void fail(uint64_t offset, std::string_view message) const {
        if (kind_.empty()) throw Error(path_, offset, std::string(message));
        throw Error(path_, offset, fmt::format("{} '{}': {}", kind_, name_, message));
    }

    void need(uint64_t n, const What& what, std::string_view suffix = {}) const {
        if (n > bytes_.size() - pos_) [[unlikely]] {
            if (n > remaining()) fail(pos_, fmt::format("{}{} needs {} bytes, only {} left", what.str(), suffix, n, remaining()));
            throw NeedMore{pos_ + n};
        }
    }

    template <class T> T read(const What& what) {
        need(sizeof(T), what);
        T v = detail::load<T>(here(), enc_.big_endian);
        pos_ += sizeof(T);
        return v;
    }

    uint64_t count(const What& what, std::string_view suffix = {}) {
        need(enc_.count_bytes(), what, suffix);
        uint64_t n = detail::load_count(here(), enc_.big_endian, enc_.narrow_counts);
        pos_ += enc_.count_bytes();
        return n;
    }

    // A count of items that each take at least `min_item_bytes`: checked before any use.
    uint64_t bounded_count(const What& what, uint64_t min_item_bytes) {
        uint64_t at = pos_;
        uint64_t n = count(what);
        if (n > remaining() / min_item_bytes) [[unlikely]]
            fail(at, fmt::format("{} {} exceeds what the {} bytes left can hold (at least {} bytes each)", what.str(), n,
                                 remaining(), min_item_bytes));
        return n;
    }

    std::string_view string(const What& what) {
        uint64_t at = pos_;
        uint64_t n = count(what, " length");
        if (n > remaining()) [[unlikely]]
            fail(at, fmt::format("{} length {} exceeds the {} bytes left", what.str(), n, remaining()));
        if (n > bytes_.size() - pos_) [[unlikely]] throw NeedMore{pos_ + n};
        std::string_view s(reinterpret_cast<const char*>(here()), n);
        pos_ += n;
        return s;
    }

    // Steps over `count` strings (an array's elements), checking each length. This loop is
    // what opening a file with a large vocabulary costs, so it is kept tight.
    void skip_strings(uint64_t count) {
        if (enc_.narrow_counts) enc_.big_endian ? skip_strings_as<uint32_t, true>(count) : skip_strings_as<uint32_t, false>(count);
        else enc_.big_endian ? skip_strings_as<uint64_t, true>(count) : skip_strings_as<uint64_t, false>(count);
    }

private:
    template <class Length, bool big_endian> void skip_strings_as(uint64_t count) {
        const uint8_t* const base = bytes_.data();
        const uint8_t* const end = base + bytes_.size();
        const uint8_t* p = here();
        for (uint64_t i = 0; i < count; ++i) {
            if (static_cast<size_t>(end - p) < sizeof(Length)) [[unlikely]] {
                pos_ = static_cast<uint64_t>(p - base);
                string({"string"});  // reports the overrun
            }
            uint64_t n = detail::load<Length>(p, big_endian);
            if (n > static_cast<uint64_t>(end - p) - sizeof(Length)) [[unlikely]] {
                pos_ = static_cast<uint64_t>(p - base);
                string({"string"});
            }
            p += sizeof(Length) + n;
        }
        pos_ = static_cast<uint64_t>(p - base);
    }

    std::span<const uint8_t> bytes_;
    uint64_t file_size_;
    const std::string& path_;
    uint64_t pos_ = 0;
    Encoding enc_;
    std::string_view kind_, name_;
};

}  // namespace

class Parser {
public:
    // `available`: how many of the file's first bytes hold its bytes now (all by default).
    Parser(File& f, FaultLog* faults, uint64_t available = UINT64_MAX)
        : f_(f), r_(f.bytes_.first(std::min<uint64_t>(available, f.bytes_.size())), f.bytes_.size(), f.path_), faults_(faults) {}

    void run() {
        header();
        key_values();
        tensor_infos();
        layout();
    }

private:
    // A fault the rest of the file can be read past: thrown when strict, recorded when lenient.
    void fault(uint64_t offset, std::string_view kind, std::string_view subject, std::string message) {
        if (!faults_) {
            r_.set_context(kind, subject);
            r_.fail(offset, message);
        }
        faults_->add({f_.path_, offset, std::string(subject), std::move(message)});
    }

    void header() {
        r_.need(4, {"magic"});
        if (!std::equal(kMagic, kMagic + 4, r_.here())) {
            std::string shown;
            for (int i = 0; i < 4; ++i) shown += fmt::format("{:02x}", r_.here()[i]);
            r_.fail(0, fmt::format("not a GGUF file: magic bytes are {} (47475546, \"GGUF\", expected)", shown));
        }
        r_.skip(4);
        uint64_t at = r_.pos();
        uint32_t version = r_.read<uint32_t>({"version"});
        Encoding enc;
        // A big-endian file's version reads byte-swapped: its low 16 bits are zero.
        if ((version & 0xffff) == 0 && version != 0) {
            enc.big_endian = true;
            version = detail::byteswap(version);
        }
        if (version < 1 || version > 3)
            r_.fail(at, fmt::format("unsupported GGUF version {} (1, 2 and 3 are known)", version));
        enc.narrow_counts = version == 1;
        f_.version_ = version;
        f_.encoding_ = enc;
        r_.set_encoding(enc);

        const uint64_t cb = enc.count_bytes();
        // Smallest tensor info: name length, u32 n_dims, u32 type, u64 offset.
        n_tensors_ = bounded_index_count({"tensor count"}, cb + 4 + 4 + 8);
        // Smallest key/value: key length, u32 type, a 1-byte value.
        n_kv_ = bounded_index_count({"key/value count"}, cb + 4 + 1);
    }

    uint32_t bounded_index_count(const What& what, uint64_t min_bytes) {
        uint64_t at = r_.pos();
        uint64_t n = r_.bounded_count(what, min_bytes);
        if (n >= std::numeric_limits<uint32_t>::max()) r_.fail(at, fmt::format("{} {} is beyond what this reader supports", what.str(), n));
        return static_cast<uint32_t>(n);
    }

    void key_values() {
        f_.kvs_.reserve(std::min<uint32_t>(n_kv_, 1u << 16));  // a damaged count in a large file must not allocate gigabytes
        for (uint32_t i = 0; i < n_kv_; ++i) {
            KeyValue kv;
            kv.file_offset = r_.pos();
            kv.key = r_.string({"key ", i});
            r_.set_context("key", kv.key);
            kv.value = value(value_type(r_.read<uint32_t>({"value type"}), "value type"), 0);
            r_.clear_context();
            f_.kvs_.push_back(kv);
        }
        detail::build_index(f_.kv_index_, n_kv_, [&](uint32_t i) { return f_.kvs_[i].key; }, [&](uint32_t dup, uint32_t first) {
            const KeyValue& kv = f_.kvs_[dup];
            fault(kv.file_offset, "key", kv.key, fmt::format("duplicate of the key at offset {}", f_.kvs_[first].file_offset));
        });
        if (const KeyValue* a = f_.find("general.alignment")) {
            // Lenient: a bad value is recorded and the default alignment used.
            if (a->value.type() != ValueType::U32)
                fault(a->file_offset, "key", a->key, fmt::format("must be u32, not {}", value_type_name(a->value.type())));
            else if (uint32_t align = a->value.u32(); align == 0 || (align & (align - 1)) != 0)
                fault(a->file_offset, "key", a->key, fmt::format("alignment {} is not a power of two", align));
            else
                f_.alignment_ = align;
        }
        r_.clear_context();
    }

    ValueType value_type(uint32_t raw, std::string_view what) {
        if (raw >= kValueTypeCount) r_.fail(r_.pos() - 4, fmt::format("invalid {} {} (0 to 12 are defined)", what, raw));
        return static_cast<ValueType>(raw);
    }

    void check_bools(uint64_t n) {
        for (uint64_t i = 0; i < n; ++i)
            if (r_.here()[i] > 1)
                r_.fail(r_.pos() + i, fmt::format("bool byte is {} (only 0 and 1 are valid)", r_.here()[i]));
    }

    Value value(ValueType t, uint32_t depth) {
        const Encoding enc = r_.encoding();
        if (t == ValueType::String) {
            std::string_view s = r_.string({"string"});
            return Value::string(reinterpret_cast<const uint8_t*>(s.data()), s.size(), enc);
        }
        if (t != ValueType::Array) {
            uint32_t n = value_type_size(t);
            r_.need(n, {"", std::nullopt, value_type_name(t), " value"});
            if (t == ValueType::Bool) check_bools(1);
            Value v = Value::scalar(t, r_.here(), enc);
            r_.skip(n);
            return v;
        }
        if (depth + 1 >= kMaxArrayDepth) r_.fail(r_.pos(), fmt::format("arrays nested deeper than {} levels", kMaxArrayDepth));
        ValueType elem = value_type(r_.read<uint32_t>({"array element type"}), "array element type");
        const uint32_t fixed = value_type_size(elem);
        const uint64_t min_bytes = fixed ? fixed : elem == ValueType::String ? enc.count_bytes() : 4 + enc.count_bytes();
        uint64_t count = r_.bounded_count({"array of ", std::nullopt, value_type_name(elem), ": count"}, min_bytes);
        const uint8_t* first = r_.here();
        const uint64_t start = r_.pos();
        if (fixed) {
            r_.need(count * fixed, {"array of ", std::nullopt, value_type_name(elem), ": values"});  // count was bounded by the bytes left
            if (elem == ValueType::Bool) check_bools(count);
            r_.skip(count * fixed);
        } else {
            if (elem == ValueType::String) r_.skip_strings(count);
            else
                for (uint64_t i = 0; i < count; ++i) value(ValueType::Array, depth + 1);
        }
        return Value::array(elem, count, first, r_.pos() - start, enc);
    }

    void tensor_infos() {
        f_.tensors_.reserve(std::min<uint32_t>(n_tensors_, 1u << 16));
        for (uint32_t i = 0; i < n_tensors_; ++i) {
            TensorInfo t;
            t.file_offset = r_.pos();
            t.name = r_.string({"tensor ", i, " name"});
            r_.set_context("tensor", t.name);
            uint64_t at = r_.pos();
            t.n_dims = r_.read<uint32_t>({"dimension count"});
            if (t.n_dims > kMaxDims) r_.fail(at, fmt::format("{} dimensions (at most {})", t.n_dims, kMaxDims));
            for (uint32_t d = 0; d < t.n_dims; ++d) {
                at = r_.pos();
                uint64_t ne = r_.count({"dimension"});
                if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                    r_.fail(at, fmt::format("dimension {} is {}, beyond the largest signed 64-bit value", d, ne));
                t.shape[d] = ne;
            }
            at = r_.pos();
            uint32_t type_id = r_.read<uint32_t>({"type"});
            const TypeInfo* type = find_type(type_id);
            if (!type) r_.fail(at, fmt::format("invalid tensor type id {} (0 to {} are defined)", type_id, kTypeCount - 1));
            if (type->retired) r_.fail(at, fmt::format("tensor type id {} ({}) is retired and no longer readable", type_id, type->name));
            t.type = type->id;
            t.data_offset = r_.read<uint64_t>({"data offset"});
            sizes(t, *type, at);
            r_.clear_context();
            f_.tensors_.push_back(t);
        }
        detail::build_index(f_.tensor_index_, n_tensors_, [&](uint32_t i) { return f_.tensors_[i].name; }, [&](uint32_t dup, uint32_t first) {
            const TensorInfo& t = f_.tensors_[dup];
            fault(t.file_offset, "tensor", t.name, fmt::format("duplicate of the tensor info at offset {}", f_.tensors_[first].file_offset));
        });
        r_.clear_context();
    }

    // Element count and byte size, refusing shapes whose sizes overflow 64 bits.
    void sizes(TensorInfo& t, const TypeInfo& type, uint64_t type_offset) {
        uint64_t n = 1;
        for (uint32_t d = 0; d < kMaxDims; ++d) {
            if (__builtin_mul_overflow(n, t.shape[d], &n) || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                r_.fail(t.file_offset, fmt::format("element count of shape {} overflows 64 bits", shape_text(t.dims())));
        }
        t.n_elements = n;
        uint64_t blocks = n / type.block_size;
        if (t.shape[0] % type.block_size != 0) {
            // Lenient: the tensor keeps a size (its rows rounded up to whole blocks) for the
            // layout checks, and no data.
            fault(type_offset, "tensor", t.name, fmt::format("row length {} is not a multiple of {}'s block size {}", t.shape[0],
                                                             type.name, type.block_size));
            t.readable = false;
            blocks = t.shape[0] / type.block_size + 1;
            if (__builtin_mul_overflow(blocks, n / t.shape[0], &blocks))
                r_.fail(t.file_offset, fmt::format("byte size of shape {} overflows 64 bits", shape_text(t.dims())));
        }
        if (__builtin_mul_overflow(blocks, uint64_t{type.type_size}, &t.n_bytes))
            r_.fail(t.file_offset, fmt::format("byte size of shape {} overflows 64 bits", shape_text(t.dims())));
    }


    // Where the data section starts, and every tensor's region inside the file, apart and aligned.
    void layout() {
        f_.data_section_offset_ = align_up(r_.pos(), f_.alignment_);
        const uint64_t file_size = f_.bytes_.size();
        const uint64_t data_bytes = f_.data_section_offset_ <= file_size ? file_size - f_.data_section_offset_ : 0;
        bool sorted = true;
        std::vector<uint32_t> order;  // tensors with their data inside the file
        order.reserve(f_.tensors_.size());
        for (uint32_t i = 0; i < f_.tensors_.size(); ++i) {
            TensorInfo& t = f_.tensors_[i];
            if (!t.readable) continue;  // its shape is at fault: its true size is unknown
            if (t.data_offset % f_.alignment_ != 0)
                fault(t.file_offset, "tensor", t.name, fmt::format("data offset {} is not a multiple of the alignment {}", t.data_offset, f_.alignment_));
            if (t.data_offset > data_bytes || t.n_bytes > data_bytes - t.data_offset) {
                const uint64_t end = t.data_offset > UINT64_MAX - t.n_bytes ? UINT64_MAX : t.data_offset + t.n_bytes;
                fault(t.file_offset, "tensor", t.name, fmt::format("data [{}, {}) of the data section at {} ends beyond the file's {} bytes",
                                                                   t.data_offset, end, f_.data_section_offset_, file_size));
                t.readable = false;
            }
            if (!t.readable) continue;  // outside the file
            if (!order.empty() && t.data_offset < f_.tensors_[order.back()].data_offset) sorted = false;
            order.push_back(i);
        }
        if (!sorted)
            std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return f_.tensors_[a].data_offset < f_.tensors_[b].data_offset; });
        // Each region against the one reaching furthest among those before it, so a region
        // inside a large one is caught too.
        for (size_t i = 1, reach = 0; i < order.size(); ++i) {
            const TensorInfo& prev = f_.tensors_[order[reach]];
            const TensorInfo& t = f_.tensors_[order[i]];
            if (t.data_offset < prev.data_offset + prev.n_bytes)
                fault(t.file_offset, "tensor", t.name, fmt::format("data [{}, {}) overlaps tensor '{}' at [{}, {})", t.data_offset,
                                                                   t.data_offset + t.n_bytes, prev.name, prev.data_offset, prev.data_offset + prev.n_bytes));
            if (t.data_offset + t.n_bytes > prev.data_offset + prev.n_bytes) reach = i;
        }
        r_.clear_context();
    }

    File& f_;
    Cursor r_;
    FaultLog* faults_;  // null: strict
    uint32_t n_tensors_ = 0;
    uint32_t n_kv_ = 0;
};

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::filesystem::path& path) {
    return http::is_url(path.native()) ? open_remote(path.native(), nullptr) : open_mapped(path, nullptr);
}
File File::open(const std::filesystem::path& path, FaultLog& faults) {
    return http::is_url(path.native()) ? open_remote(path.native(), &faults) : open_mapped(path, &faults);
}
File File::parse(std::span<const uint8_t> bytes, std::string name) { return parse_bytes(bytes, std::move(name), nullptr); }
File File::parse(std::span<const uint8_t> bytes, std::string name, FaultLog& faults) {
    return parse_bytes(bytes, std::move(name), &faults);
}

File File::open_mapped(const std::filesystem::path& path, FaultLog* faults) {
    File f;
    f.path_ = path.string();
    f.mapping_ = std::make_unique<Mapping>(path);
    f.bytes_ = f.mapping_->bytes();
    if (zst::looks_compressed(f.bytes_)) return open_compressed(path, faults);
    Parser(f, faults).run();
    return f;
}

// The header is the container's first frame (gguf compress writes it alone): decompressed
// now and parsed over the whole original file's span, tensors decompressed when read.
File File::open_compressed(const std::filesystem::path& path, FaultLog* faults) {
    File f;
    f.path_ = path.string();
    auto image = std::make_unique<zst::LazyImage>(zst::Container::open(path));
    const zst::Container& c = image->container();
    if (c.frames().empty()) throw Error(f.path_, std::nullopt, "the .gguf.zst holds no frames");
    const uint64_t header_frame = c.frames()[0].size;
    image->ensure(0, header_frame);
    f.bytes_ = image->bytes();
    f.lazy_ = std::move(image);
    f.compressed_ = true;
    auto past_frame = [&](uint64_t end) {
        return Error(f.path_, header_frame, fmt::format("the GGUF header (at least {} bytes) runs past the container's first frame ({} bytes): "
                                                        "not written by gguf compress", end, header_frame));
    };
    try {
        Parser(f, faults, header_frame).run();
    } catch (const NeedMore& m) {
        throw past_frame(m.end);
    }
    if (f.data_section_offset_ > header_frame) throw past_frame(f.data_section_offset_);
    return f;
}

// The header is read from the first http::first_read() bytes, and parsed again over more (at least
// twice as many) until it fits: about the header's size is transferred.
File File::open_remote(const std::string& url, FaultLog* faults) {
    File f;
    f.path_ = url;
    std::unique_ptr<http::RemoteFile> remote = http::RemoteFile::open(url, http::headers(), http::first_read());
    http::RemoteFile& r = *remote;
    f.bytes_ = r.bytes();
    f.lazy_ = std::move(remote);
    if (zst::looks_compressed(f.bytes_.first(std::min<uint64_t>(r.prefix(), 4))))
        throw Error(url, 0, "a .gguf.zst is not read over HTTP (only plain GGUF files are): download it, then open it or gguf decompress it");
    for (;;) {
        FaultLog attempt;
        try {
            Parser(f, faults ? &attempt : nullptr, r.prefix()).run();
            if (faults) faults->append(attempt);
            return f;
        } catch (const NeedMore& m) {
            if (m.end > http::kMaxHeader)
                throw Error(url, r.prefix(), fmt::format("reading the GGUF header would take {} bytes, more than the {} read over HTTP "
                                                         "(a damaged length or count?); download the file to check it", m.end, http::kMaxHeader));
            f.clear_parsed();
            r.extend_prefix(std::min(std::max(m.end, 2 * r.prefix()), http::kMaxHeader));
        }
    }
}

void File::clear_parsed() {
    kvs_.clear();
    tensors_.clear();
    kv_index_.clear();
    tensor_index_.clear();
    alignment_ = kDefaultAlignment;
    data_section_offset_ = 0;
}

void File::decompress(const TensorInfo& t) const {
    try {
        lazy_->ensure(data_section_offset_ + t.data_offset, t.n_bytes);
    } catch (const Error& e) {
        throw Error(e.file(), e.offset(), fmt::format("tensor '{}': {}", t.name, e.message()));
    }
}

File File::parse_bytes(std::span<const uint8_t> bytes, std::string name, FaultLog* faults) {
    File f;
    f.path_ = std::move(name);
    f.bytes_ = bytes;
    Parser(f, faults).run();
    return f;
}

const KeyValue* File::find(std::string_view key) const {
    int64_t i = detail::lookup(kv_index_, key, [&](uint32_t j) { return kvs_[j].key; });
    return i < 0 ? nullptr : &kvs_[i];
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    int64_t i = detail::lookup(tensor_index_, name, [&](uint32_t j) { return tensors_[j].name; });
    return i < 0 ? nullptr : &tensors_[i];
}

}  // namespace gguf
