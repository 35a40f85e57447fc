#include "gguf/mapping.h"

#include "gguf/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gguf/error.h"

namespace gguf {

namespace {
struct Fd {
    int fd;
    ~Fd() { if (fd >= 0) ::close(fd); }
};
[[noreturn]] void fail(const std::filesystem::path& path, const char* what) {
    throw Error(path.string(), std::nullopt, std::string(what) + ": " + std::strerror(errno));
}
}  // namespace

Mapping::Mapping(const std::filesystem::path& path) {
    Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) fail(path, "cannot open");
    struct stat st{};
    if (::fstat(f.fd, &st) != 0) fail(path, "cannot stat");
    if (!S_ISREG(st.st_mode)) throw Error(path.string(), std::nullopt, "not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) return;  // mmap refuses length 0; the parser reports the empty file
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, f.fd, 0);
    if (p == MAP_FAILED) fail(path, "cannot map");
    data_ = static_cast<const uint8_t*>(p);
    fd_ = f.fd;  // kept: tensor data can be copied file to file (Writer, copy_file_range)
    f.fd = -1;
}

Mapping::~Mapping() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
}

void raise_open_file_limit() {
    struct rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

int File::descriptor() const { return mapping_ ? mapping_->fd() : -1; }

void File::release_pages(std::span<const uint8_t> bytes) const {
    const auto first = reinterpret_cast<uintptr_t>(bytes.data()), mapped = reinterpret_cast<uintptr_t>(bytes_.data());
    if (bytes.empty() || first < mapped || bytes.size() > bytes_.size() || first - mapped > bytes_.size() - bytes.size()) return;
    if (lazy_) {
        // A .gguf.zst's frames, a URL's pages wholly inside, never the header's (every key and
        // name is a view into them), and the padding after a tensor's bytes with them.
        uint64_t from = first - mapped, to = from + bytes.size();
        from = std::max(from, data_section_offset_);
        if (to > data_section_offset_) to = std::min<uint64_t>(bytes_.size(), data_section_offset_ + (to - data_section_offset_ + alignment_ - 1) / alignment_ * alignment_);
        if (to > from) lazy_->release(from, to - from);
        return;
    }
    if (!mapping_) return;
    static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (first + page - 1) / page * page;
    const auto end = (first + bytes.size()) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void File::map_in(std::span<const uint8_t> bytes) const {
    const auto first = reinterpret_cast<uintptr_t>(bytes.data()), mapped = reinterpret_cast<uintptr_t>(bytes_.data());
    if (!mapping_ || lazy_ || bytes.empty() || first < mapped || bytes.size() > bytes_.size() || first - mapped > bytes_.size() - bytes.size()) return;
    static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = first / page * page, end = first + bytes.size();  // the mapping starts on a page
#ifndef MADV_POPULATE_READ
    constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14
#endif
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) != 0) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_WILLNEED);
}

}  // namespace gguf
