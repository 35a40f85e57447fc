// Files for the viewer's File menu: the folder listing of its file browser and the list of
// recently opened files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace viewer {

struct DirEntry {
    std::string name;
    bool directory = false;
    uint64_t size = 0;  // files only
};

// The entries of `dir`: folders first, then files (only names ending in .gguf, any case,
// when gguf_only), each group by name; hidden entries (a leading dot) left out. Entries that
// cannot be examined are skipped. Throws std::filesystem::filesystem_error when the folder
// cannot be read.
std::vector<DirEntry> list_directory(const std::filesystem::path& dir, bool gguf_only);

// Recently opened files, most recent first, at most `limit`, kept in a text file (one
// absolute path a line), written to a temporary file and renamed into place.
class RecentFiles {
public:
    RecentFiles(std::filesystem::path store, size_t limit = 10);
    const std::vector<std::string>& items() const { return items_; }
    // Moves `path` (made absolute) to the front and saves; a failure to save is ignored (the
    // list is a convenience), and reported by the return value.
    bool add(const std::filesystem::path& path);
    void remove(const std::string& path);

    // $XDG_CONFIG_HOME/ggufkit/recent-files, else ~/.config/ggufkit/recent-files; empty when
    // neither variable is set.
    static std::filesystem::path default_store();

private:
    bool save() const;
    std::filesystem::path store_;
    size_t limit_;
    std::vector<std::string> items_;
};

}  // namespace viewer
