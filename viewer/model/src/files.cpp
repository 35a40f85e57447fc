#include "viewer/files.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <system_error>
#include <unistd.h>

#include "viewer/document.h"

namespace viewer {

namespace fs = std::filesystem;

std::vector<DirEntry> list_directory(const fs::path& dir, bool gguf_only) {
    std::vector<DirEntry> out;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, fs::directory_options::skip_permission_denied)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name[0] == '.') continue;
        std::error_code ec;
        const bool directory = e.is_directory(ec);
        if (ec) continue;
        if (!directory) {
            if (!e.is_regular_file(ec) || ec) continue;
            const bool gguf = (name.size() >= 5 && contains_ignoring_case(name.substr(name.size() - 5), ".gguf")) ||
                              (name.size() >= 9 && contains_ignoring_case(name.substr(name.size() - 9), ".gguf.zst"));
            if (gguf_only && !gguf) continue;
        }
        DirEntry d;
        d.name = name;
        d.directory = directory;
        if (!directory) {
            d.size = e.file_size(ec);
            if (ec) d.size = 0;
        }
        out.push_back(std::move(d));
    }
    std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) {
        return a.directory != b.directory ? a.directory : a.name < b.name;
    });
    return out;
}

RecentFiles::RecentFiles(fs::path store, size_t limit) : store_(std::move(store)), limit_(std::max<size_t>(1, limit)) {
    if (store_.empty()) return;
    std::ifstream in(store_);
    std::string line;
    while (items_.size() < limit_ && std::getline(in, line))
        if (!line.empty() && std::find(items_.begin(), items_.end(), line) == items_.end()) items_.push_back(line);
}

bool RecentFiles::add(const fs::path& path) {
    std::error_code ec;
    fs::path absolute = fs::absolute(path, ec);
    const std::string p = (ec ? path : absolute.lexically_normal()).string();
    items_.erase(std::remove(items_.begin(), items_.end(), p), items_.end());
    items_.insert(items_.begin(), p);
    if (items_.size() > limit_) items_.resize(limit_);
    return save();
}

void RecentFiles::remove(const std::string& path) {
    items_.erase(std::remove(items_.begin(), items_.end(), path), items_.end());
    save();
}

bool RecentFiles::save() const {
    if (store_.empty()) return false;
    std::error_code ec;
    fs::create_directories(store_.parent_path(), ec);
    const fs::path tmp = store_.string() + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        for (const std::string& p : items_) out << p << '\n';
        out.flush();
        if (!out) {
            fs::remove(tmp, ec);
            return false;
        }
    }
    fs::rename(tmp, store_, ec);
    if (ec) {
        std::error_code cleanup;
        fs::remove(tmp, cleanup);
        return false;
    }
    return true;
}

fs::path RecentFiles::default_store() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) return fs::path(xdg) / "ggufkit" / "recent-files";
    if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".config" / "ggufkit" / "recent-files";
    return {};
}

}  // namespace viewer
