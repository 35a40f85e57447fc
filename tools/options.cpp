#include "options.h"

#include <string>

namespace gguf::tools {

CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& names) {
    return command->add_option(names, threads, "Threads to use (default 0: one per core)")
        ->check(CLI::Validator(
            [](const std::string& text) -> std::string {
                try {
                    size_t used = 0;
                    const long v = std::stol(text, &used);
                    if (used == text.size() && v >= 0 && v <= 4096) return "";
                } catch (const std::exception&) {
                }
                return "'" + text + "' is not a thread count: give 0 (one per core) or a number of threads up to 4096";
            },
            "N"));
}

}  // namespace gguf::tools
