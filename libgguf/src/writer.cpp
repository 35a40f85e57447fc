#include "gguf/writer.h"

#include "gguf/model.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "byte_order.h"

namespace gguf {

namespace {

// Appends header numbers and strings in the file's encoding.
class Encoder {
public:
    Encoder(std::vector<uint8_t>& out, const WriteOptions& o) : out_(out), big_(o.big_endian), narrow_(o.version == 1) {}

    template <class T> void num(T v) {
        if (big_ != (std::endian::native == std::endian::big)) v = detail::byteswap(v);
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        out_.insert(out_.end(), p, p + sizeof(T));
    }
    void count(uint64_t n) {
        if (!narrow_) return num<uint64_t>(n);
        if (n > UINT32_MAX) throw std::invalid_argument(fmt::format("count {} does not fit GGUF version 1's 32 bits", n));
        num<uint32_t>(static_cast<uint32_t>(n));
    }
    void str(std::string_view s) {
        count(s.size());
        out_.insert(out_.end(), s.begin(), s.end());
    }
    void scalar(ValueType t, uint64_t bits) {
        switch (value_type_size(t)) {
            case 1: return num<uint8_t>(static_cast<uint8_t>(bits));
            case 2: return num<uint16_t>(static_cast<uint16_t>(bits));
            case 4: return num<uint32_t>(static_cast<uint32_t>(bits));
            default: return num<uint64_t>(bits);
        }
    }
    void value(const OwnedValue& v) {
        if (v.type() == ValueType::String) return str(v.str());
        if (v.type() != ValueType::Array) return scalar(v.type(), v.bits());
        const ValueType elem = v.element_type();
        num<uint32_t>(static_cast<uint32_t>(elem));
        count(v.size());
        if (elem == ValueType::String)
            for (uint64_t i = 0; i < v.size(); ++i) str(v.string_at(i));
        else if (elem == ValueType::Array)
            for (uint64_t i = 0; i < v.size(); ++i) value(v.array_at(i));
        else
            fixed(v.element_bytes(), value_type_size(elem));
    }
    // Fixed-size elements, held little-endian: copied as they are, or each one's bytes
    // reversed for a big-endian file.
    void fixed(std::span<const uint8_t> little_endian, uint32_t size) {
        const auto first = static_cast<std::ptrdiff_t>(out_.size());
        out_.insert(out_.end(), little_endian.begin(), little_endian.end());
        if (big_ && size > 1)
            for (auto p = out_.begin() + first; p != out_.end(); p += size) std::reverse(p, p + size);
    }

private:
    std::vector<uint8_t>& out_;
    bool big_, narrow_;
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

const uint8_t kZeros[256] = {};

void pad(ByteSink& out, uint64_t written, uint64_t alignment) {
    for (uint64_t n = align_up(written, alignment) - written; n > 0;) {
        uint64_t k = std::min<uint64_t>(n, sizeof kZeros);
        out.write({kZeros, k});
        n -= k;
    }
}

// Counts what a tensor source writes, and refuses more than the tensor's size.
class CountingSink : public ByteSink {
public:
    CountingSink(ByteSink& out, uint64_t limit, const std::string& name) : out_(out), limit_(limit), name_(name) {}
    void write(std::span<const uint8_t> b) override {
        if (b.size() > limit_ - written_)
            throw std::runtime_error(fmt::format("tensor '{}': source wrote more than its {} bytes", name_, limit_));
        out_.write(b);
        written_ += b.size();
    }
    uint64_t copy_from(int fd, uint64_t offset, uint64_t n) override {
        if (n > limit_ - written_)
            throw std::runtime_error(fmt::format("tensor '{}': source wrote more than its {} bytes", name_, limit_));
        const uint64_t copied = out_.copy_from(fd, offset, n);
        written_ += copied;
        return copied;
    }
    uint64_t written() const { return written_; }

private:
    ByteSink& out_;
    uint64_t limit_, written_ = 0;
    const std::string& name_;
};

class MemorySink : public ByteSink {
public:
    explicit MemorySink(std::vector<uint8_t>& v) : v_(v) {}
    void write(std::span<const uint8_t> b) override { v_.insert(v_.end(), b.begin(), b.end()); }
private:
    std::vector<uint8_t>& v_;
};

std::atomic<uint64_t> g_direct_writes{0};
std::atomic<bool> g_fail_direct{false};

// Network and user-space file systems take O_DIRECT but make every direct write a synchronous
// round trip: written through the page cache there.
bool network_file_system(int fd) {
    struct statfs st;
    if (::fstatfs(fd, &st) != 0) return true;  // unknown: the plain write
    switch (static_cast<uint64_t>(st.f_type)) {
    case 0x6969:      // NFS
    case 0x517B:      // SMB
    case 0xFF534D42:  // CIFS
    case 0xFE534D42:  // SMB2
    case 0x65735546:  // FUSE
    case 0x01021997:  // 9P
    case 0x00C36400:  // Ceph
        return true;
    default:
        return false;
    }
}

// A buffered file descriptor. With `direct`, the file is written with O_DIRECT where the file
// system takes it (not network ones): whole aligned blocks from an aligned buffer, past the
// page cache, so the kernel neither copies the bytes into the cache nor writes them back at the
// fsync that ends write_file_atomically (on a fast conversion, most of its time); the last
// block goes out padded, and the file is cut back to its length. Where O_DIRECT is refused
// (tmpfs before Linux 6.6) or a direct write fails with EINVAL, it writes as without.
class FdSink : public ByteSink {
public:
    FdSink(int fd, const std::string& path, bool direct) : fd_(fd), path_(path), buf_(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kBuffer))) {
        if (!buf_) throw std::bad_alloc();
        direct_ = direct && !network_file_system(fd) && set_direct(true);
    }
    void write(std::span<const uint8_t> b) override {
        written_ += b.size();
        if (!direct_ && used_ + b.size() > kBuffer) flush();
        if (!direct_ && b.size() >= kBuffer) return raw(b);
        while (!b.empty()) {
            if (used_ == kBuffer) flush();  // a whole buffer: aligned in either mode
            const size_t n = std::min(b.size(), kBuffer - used_);
            std::memcpy(buf_.get() + used_, b.data(), n);
            used_ += n;
            b = b.subspan(n);
        }
    }
    // Writes what the buffer holds; with O_DIRECT, only whole blocks but at the end (finish).
    void flush() {
        raw({buf_.get(), used_});
        used_ = 0;
    }
    // The end of the file: the buffer's rest, padded to a block with O_DIRECT (then cut off).
    void finish() {
        if (!direct_ || used_ % kAlign == 0) return flush();
        const size_t padded = (used_ / kAlign + 1) * kAlign;
        std::memset(buf_.get() + used_, 0, padded - used_);
        used_ = padded;
        flush();
        if (::ftruncate(fd_, static_cast<off_t>(written_)) != 0)
            throw Error(path_, std::nullopt, fmt::format("cannot set the file's length: {}", std::strerror(errno)));
    }
    uint64_t copy_from(int in, uint64_t offset, uint64_t n) override {
        if (direct_) return 0;  // the position must stay block-aligned: the caller writes the bytes
        flush();  // the file position is where the copy goes
        auto off = static_cast<off64_t>(offset);
        uint64_t done = 0;
        while (done < n) {
            const ssize_t r = ::copy_file_range(in, &off, fd_, nullptr, static_cast<size_t>(n - done), 0);
            if (r < 0 && errno == EINTR) continue;
            // Out of room or a failing disk is the output's problem: say so. Anything else (not
            // between these files on this kernel, a sandbox refusing the call) leaves the rest
            // to the caller's plain writes, from where the copy stopped.
            if (r < 0 && (errno == ENOSPC || errno == EDQUOT || errno == EFBIG || errno == EIO))
                throw Error(path_, std::nullopt, fmt::format("copying tensor data failed: {}", std::strerror(errno)));
            if (r < 0) return done;
            if (r == 0) break;  // the input ended early: the caller writes the rest from its mapping (and sees the truth)
            done += static_cast<uint64_t>(r);
            written_ += static_cast<uint64_t>(r);
        }
        return done;
    }

private:
    static constexpr size_t kAlign = 4096;  // O_DIRECT's block: the logical block size of nearly every disk
    static constexpr size_t kBuffer = 4 << 20;
    bool set_direct(bool on) {
        const int flags = ::fcntl(fd_, F_GETFL);
        return flags >= 0 && ::fcntl(fd_, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) == 0;
    }
    void raw(std::span<const uint8_t> b) {
        while (!b.empty()) {
            ssize_t n = direct_ && g_fail_direct.load() ? (errno = EINVAL, -1) : ::write(fd_, b.data(), b.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EINVAL && direct_) {  // the file system took O_DIRECT but not these blocks: write through the cache
                direct_ = false;
                if (!set_direct(false)) throw Error(path_, std::nullopt, fmt::format("write failed: {}", std::strerror(errno)));
                continue;
            }
            if (n < 0) throw Error(path_, std::nullopt, fmt::format("write failed: {}", std::strerror(errno)));
            if (direct_) g_direct_writes.fetch_add(1, std::memory_order_relaxed);
            b = b.subspan(static_cast<size_t>(n));
        }
    }
    struct Free {
        void operator()(uint8_t* p) const { std::free(p); }
    };
    int fd_;
    const std::string& path_;
    std::unique_ptr<uint8_t, Free> buf_;
    size_t used_ = 0;
    uint64_t written_ = 0;  // the file's length so far, as the caller wrote it
    bool direct_ = false;
};

}  // namespace

namespace testing {
uint64_t direct_writes() { return g_direct_writes.load(); }
void fail_direct_writes(bool on) { g_fail_direct.store(on); }
}  // namespace testing

Writer::Writer(WriteOptions options) : options_(options) {
    if (options.version < 1 || options.version > 3)
        throw std::invalid_argument(fmt::format("cannot write GGUF version {}", options.version));
}

Writer Writer::copy_of(const File& f) {
    Writer w({f.version(), f.big_endian()});
    for (const KeyValue& kv : f.kvs()) w.set(std::string(kv.key), OwnedValue::from(kv.value));
    for (const TensorInfo& t : f.tensors()) w.add_tensor(f, t);
    return w;
}

void Writer::add_tensor(const File& f, const TensorInfo& t) {
    if (f.compressed() || f.transfer()) {  // decompressed or fetched when written, not all at once now
        add_tensor(std::string(t.name), t.type, {t.dims().begin(), t.dims().end()}, [&f, &t](ByteSink& sink) {
            const std::span<const uint8_t> data = f.tensor_data(t);
            sink.write(data);
            f.release_pages(data);
        });
        return;
    }
    const std::span<const uint8_t> data = f.tensor_data(t);
    const int fd = data.empty() ? -1 : f.descriptor();
    const uint64_t offset = data.empty() ? 0 : static_cast<uint64_t>(data.data() - f.bytes().data());
    add_tensor(std::string(t.name), t.type, {t.dims().begin(), t.dims().end()}, [data, fd, offset](ByteSink& sink) {
        const uint64_t copied = fd >= 0 ? sink.copy_from(fd, offset, data.size()) : 0;
        if (copied < data.size()) sink.write(data.subspan(static_cast<size_t>(copied)));
    });
}

void Writer::set(std::string key, OwnedValue value) {
    if (key == "general.alignment") {
        uint64_t a = value.bits();
        if (value.type() != ValueType::U32 || a == 0 || (a & (a - 1)) != 0)
            throw std::invalid_argument("general.alignment must be a u32 power of two");
    }
    if (auto it = kv_position_.find(key); it != kv_position_.end()) {
        kvs_[it->second].second = std::move(value);
        return;
    }
    kv_position_.emplace(key, kvs_.size());
    kvs_.emplace_back(std::move(key), std::move(value));
}

const OwnedValue* Writer::find(std::string_view key) const {
    auto it = kv_position_.find(std::string(key));
    return it == kv_position_.end() ? nullptr : &kvs_[it->second].second;
}

void Writer::remove(std::string_view key) {
    auto it = kv_position_.find(std::string(key));
    if (it == kv_position_.end()) return;
    const size_t removed = it->second;
    kv_position_.erase(it);
    kvs_.erase(kvs_.begin() + static_cast<std::ptrdiff_t>(removed));
    for (auto& [k, i] : kv_position_)
        if (i > removed) --i;
}

uint32_t Writer::alignment() const {
    auto it = kv_position_.find("general.alignment");
    return it == kv_position_.end() ? kDefaultAlignment : static_cast<uint32_t>(kvs_[it->second].second.bits());
}

void Writer::add_tensor(std::string name, TypeId type, std::vector<uint64_t> shape, TensorSource source) {
    const TypeInfo* info = find_type(static_cast<uint32_t>(type));
    if (!info || info->retired) throw std::invalid_argument(fmt::format("tensor '{}': type id {} cannot be written", name, static_cast<uint32_t>(type)));
    if (shape.size() > kMaxDims) throw std::invalid_argument(fmt::format("tensor '{}': {} dimensions (at most {})", name, shape.size(), kMaxDims));
    uint64_t n = 1;
    for (uint64_t d : shape)
        if (__builtin_mul_overflow(n, d, &n)) throw std::invalid_argument(fmt::format("tensor '{}': element count overflows", name));
    if (!shape.empty() && shape[0] % info->block_size != 0)
        throw std::invalid_argument(fmt::format("tensor '{}': row length {} is not a multiple of {}'s block size {}", name,
                                                shape[0], info->name, info->block_size));
    if (!tensor_names_.insert(name).second) throw std::invalid_argument(fmt::format("tensor '{}' added twice", name));
    const uint64_t bytes = tensor_bytes(type, n);
    tensors_.push_back({std::move(name), type, std::move(shape), bytes, std::move(source)});
}

void Writer::add_tensor(std::string name, TypeId type, std::vector<uint64_t> shape, std::span<const uint8_t> data) {
    add_tensor(std::move(name), type, std::move(shape), [data](ByteSink& out) { out.write(data); });
    if (tensors_.back().n_bytes != data.size()) {
        std::string msg = fmt::format("tensor '{}': {} bytes given, its type and shape need {}", tensors_.back().name,
                                      data.size(), tensors_.back().n_bytes);
        tensor_names_.erase(tensors_.back().name);
        tensors_.pop_back();
        throw std::invalid_argument(msg);
    }
}

std::vector<uint8_t> Writer::header(std::span<const uint64_t> offsets) const {
    if (!offsets.empty() && offsets.size() != tensors_.size())
        throw std::invalid_argument(fmt::format("{} tensor offsets for {} tensors", offsets.size(), tensors_.size()));
    const uint64_t alignment = this->alignment();
    std::vector<uint8_t> head;
    head.reserve(4096);  // also keeps GCC 12 from a false -Warray-bounds on the first insert
    head.insert(head.end(), {'G', 'G', 'U', 'F'});
    Encoder e(head, options_);
    e.num<uint32_t>(options_.version);
    e.count(tensors_.size());
    e.count(kvs_.size());
    for (const auto& [k, v] : kvs_) {
        e.str(k);
        e.num<uint32_t>(static_cast<uint32_t>(v.type()));
        e.value(v);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const PendingTensor& t = tensors_[i];
        e.str(t.name);
        e.num<uint32_t>(static_cast<uint32_t>(t.shape.size()));
        for (uint64_t d : t.shape) e.count(d);
        e.num<uint32_t>(static_cast<uint32_t>(t.type));
        e.num<uint64_t>(offsets.empty() ? offset : offsets[i]);
        offset = align_up(offset + t.n_bytes, alignment);
    }
    return head;
}

void Writer::emit(ByteSink& out, const std::string& target) const {
    const uint64_t alignment = this->alignment();
    const std::vector<uint8_t> head = header();
    out.write(head);
    pad(out, head.size(), alignment);
    for (const PendingTensor& t : tensors_) {
        CountingSink counted(out, t.n_bytes, t.name);
        t.source(counted);
        if (counted.written() != t.n_bytes)
            throw Error(target, std::nullopt, fmt::format("tensor '{}': source wrote {} of its {} bytes", t.name,
                                                          counted.written(), t.n_bytes));
        pad(out, t.n_bytes, alignment);
    }
}

std::vector<uint8_t> Writer::write_to_memory() const {
    std::vector<uint8_t> v;
    MemorySink sink(v);
    emit(sink, "(memory)");
    return v;
}

void Writer::write(const std::filesystem::path& path) const {
    write_file_atomically(path, [&](ByteSink& sink) { emit(sink, path.string()); }, options_.direct_io);
}

void write_file_atomically(const std::filesystem::path& path, const std::function<void(ByteSink&)>& produce, bool direct) {
    const std::string target = path.string();
    std::filesystem::path dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    std::string tmp = (dir / fmt::format(".{}.tmp-XXXXXX", path.filename().string())).string();
    int fd = ::mkstemp(tmp.data());
    if (fd < 0) throw Error(target, std::nullopt, fmt::format("cannot create a temporary file in {}: {}", dir.string(), std::strerror(errno)));
    try {
        FdSink sink(fd, target, direct);
        produce(sink);
        sink.finish();
        mode_t mask = ::umask(0);
        ::umask(mask);
        if (::fchmod(fd, 0666 & ~mask) != 0 || ::fsync(fd) != 0)
            throw Error(target, std::nullopt, fmt::format("cannot finish the temporary file: {}", std::strerror(errno)));
        if (::close(fd) != 0) {
            fd = -1;
            throw Error(target, std::nullopt, fmt::format("cannot close the temporary file: {}", std::strerror(errno)));
        }
        fd = -1;
        if (::rename(tmp.c_str(), target.c_str()) != 0)
            throw Error(target, std::nullopt, fmt::format("cannot rename the finished file into place: {}", std::strerror(errno)));
    } catch (...) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
}

std::vector<std::filesystem::path> write_split_set(std::span<Writer> parts, const std::filesystem::path& output,
                                                   std::span<const std::filesystem::path> inputs) {
    if (parts.empty() || parts.size() > UINT16_MAX) throw std::invalid_argument("a split set has 1 to 65535 parts");
    std::string prefix = output.string();
    if (prefix.ends_with(".gguf")) prefix.resize(prefix.size() - 5);
    const auto count = static_cast<uint32_t>(parts.size());
    const SplitName names{prefix, 0, count};
    size_t tensors = 0;
    for (const Writer& w : parts) tensors += w.tensor_count();
    if (tensors > INT32_MAX) throw std::invalid_argument("split.tensors.count holds at most 2^31 - 1 tensors");
    for (uint32_t i = 0; i < count; ++i) {
        for (const std::filesystem::path& in : inputs) refuse_overwrite(names.path_of(i + 1), in);
        // In gguf-split's order: split.no, split.tensors.count, then split.count.
        parts[i].set("split.no", OwnedValue::u16(static_cast<uint16_t>(i)));
        parts[i].set("split.tensors.count", OwnedValue::i32(static_cast<int32_t>(tensors)));
        parts[i].set("split.count", OwnedValue::u16(static_cast<uint16_t>(count)));
    }
    std::vector<std::filesystem::path> written;
    try {
        for (uint32_t i = 0; i < count; ++i) {
            parts[i].write(names.path_of(i + 1));
            written.push_back(names.path_of(i + 1));
        }
    } catch (...) {
        std::error_code ec;
        for (const std::filesystem::path& p : written) std::filesystem::remove(p, ec);
        throw;
    }
    return written;
}

}  // namespace gguf
