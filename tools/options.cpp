#include "options.h"

#include <cmath>

#include <string>

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "gguf/http.h"
#include "gguf/render.h"

namespace gguf::tools {

void add_header_option(CLI::App* command) {
    auto given = std::make_shared<std::vector<std::string>>();
    command->add_option("-H,--header", "Request header for a model read from an http(s):// URL, e.g. \"Authorization: Bearer TOKEN\" "
                                       "(repeatable; HF_TOKEN is sent to huggingface.co when no Authorization header is given)")
        ->type_name("'NAME: VALUE'")
        ->check(CLI::Validator(
            [](const std::string& h) { return http::header_problem(h); },
            ""))
        ->each([given](const std::string& h) {
            given->push_back(h);
            http::set_headers(*given);
        });
}

void report_transfer(const Model& m) {
    http::Transfer t;
    uint64_t size = 0;
    size_t remote = 0;
    for (const File& f : m.parts())
        if (auto x = f.transfer()) {
            t.bytes += x->bytes;
            t.requests += x->requests;
            size += f.size();
            ++remote;
        }
    if (remote == 0) return;
    std::fprintf(stderr, "gguf: read %s of %s over HTTP in %llu request%s%s\n", human_bytes(t.bytes).c_str(), human_bytes(size).c_str(),
                 static_cast<unsigned long long>(t.requests), t.requests == 1 ? "" : "s",
                 remote > 1 ? fmt::format(" ({} files)", remote).c_str() : "");
}

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

std::pair<std::string, OwnedValue> parse_key_value(const std::string& s, const std::string& option) {
    const size_t eq = s.find('='), colon = s.find(':', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || eq == 0 || colon == std::string::npos)
        throw CLI::ValidationError(option, fmt::format("'{}' is not KEY=TYPE:VALUE", s));
    const std::string key = s.substr(0, eq), type = s.substr(eq + 1, colon - eq - 1), value = s.substr(colon + 1);
    try {
        if (type == "str") return {key, OwnedValue::string(value)};
        if (type == "bool") {
            if (value != "true" && value != "false") throw std::invalid_argument("bool");
            return {key, OwnedValue::boolean(value == "true")};
        }
        size_t used = 0;
        if (type == "int") {
            const long long v = std::stoll(value, &used);
            if (used != value.size() || v < 0 || v > UINT32_MAX) throw std::invalid_argument("int");
            return {key, OwnedValue::u32(static_cast<uint32_t>(v))};
        }
        if (type == "float") {
            const float v = std::stof(value, &used);
            if (used != value.size()) throw std::invalid_argument("float");
            return {key, OwnedValue::f32(v)};
        }
    } catch (const std::exception&) {
        const char* expected = type == "bool" ? "true or false" : type == "int" ? "a whole number from 0 to 4294967295" : "a number";
        throw CLI::ValidationError(option, fmt::format("'{}': '{}' is not a valid {} ({})", s, value, type, expected));
    }
    throw CLI::ValidationError(option, fmt::format("'{}': type '{}' is not int, float, bool or str", s, type));
}

quant::Effort parse_effort(const std::string& s) {
    const std::optional<quant::Effort> effort = quant::effort_from_name(s);
    if (!effort) throw CLI::ValidationError("--effort", fmt::format("'{}' is not fast, default or best", s));
    return *effort;
}

uint64_t parse_size(const std::string& s, const std::string& option) {
    size_t used = 0;
    double v = 0;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    const std::string unit = s.substr(used);
    const double scale = unit.empty() ? 1 : unit == "M" || unit == "m" ? 1e6 : unit == "G" || unit == "g" ? 1e9 : 0;
    if (used == 0 || scale == 0 || !(v * scale >= 1) || !std::isfinite(v * scale) || v * scale >= 1.8e19)
        throw CLI::ValidationError(option, "'" + s + "' is not a size such as 500M or 2G");
    return static_cast<uint64_t>(v * scale);
}

}  // namespace gguf::tools
