#include "gguf/http.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "gguf/error.h"
#include "http_source.h"

namespace gguf::http {

namespace {

constexpr int kAttempts = 4;        // failed tries of a range in a row (no byte arriving) before giving up
constexpr int kMaxFailures = 64;    // failed tries of a range in all, progress or not
constexpr long kMaxRetryAfter = 30;  // seconds: the longest a busy server's Retry-After is waited for

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

bool istarts_with(std::string_view s, std::string_view prefix) { return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> number(std::string_view s) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// The lowercased host of a URL: between "://" and the path, without user info or port.
std::string host_of(std::string_view url) {
    const size_t scheme = url.find("://");
    if (scheme == std::string_view::npos) return {};
    std::string_view rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
    if (!rest.empty() && rest.front() == '[') rest = rest.substr(0, rest.find(']') + 1);  // [IPv6]
    else rest = rest.substr(0, rest.find(':'));
    std::string host(rest);
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return host;
}

bool is_domain_or_sub(std::string_view host, std::string_view domain) {
    return host == domain || (host.size() > domain.size() && host.ends_with(domain) && host[host.size() - domain.size() - 1] == '.');
}

std::mutex g_headers_lock;
std::vector<std::string> g_headers;
std::atomic<uint64_t> g_first_read{kFirstRead};

void init_curl() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("libcurl could not be initialised");
    });
}

// What the transfers of a read are checked for: a dropped connection is tried again.
bool transient(CURLcode c) {
    return c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR || c == CURLE_GOT_NOTHING ||
           c == CURLE_OPERATION_TIMEDOUT || c == CURLE_HTTP2 || c == CURLE_HTTP2_STREAM;
}

}  // namespace

bool is_url(std::string_view s) { return istarts_with(s, "http://") || istarts_with(s, "https://"); }

std::string header_problem(std::string_view h) {
    const size_t colon = h.find(':');
    const std::string_view name = colon == std::string_view::npos ? std::string_view{} : h.substr(0, colon);
    if (name.empty() || name.find_first_of(" \t\r\n") != std::string_view::npos || h.find_first_of("\r\n") != std::string_view::npos)
        return fmt::format("header '{}' is not \"Name: value\"", h);
    return {};
}

void set_headers(std::vector<std::string> headers) {
    for (const std::string& h : headers)
        if (std::string problem = header_problem(h); !problem.empty()) throw std::invalid_argument(problem);
    const std::lock_guard<std::mutex> hold(g_headers_lock);
    g_headers = std::move(headers);
}

void set_first_read(uint64_t bytes) { g_first_read = std::max<uint64_t>(bytes, 1); }
uint64_t first_read() { return g_first_read; }

std::vector<std::string> headers() {
    const std::lock_guard<std::mutex> hold(g_headers_lock);
    return g_headers;
}

std::vector<std::string> request_headers(std::string_view url, std::span<const std::string> given, const char* hf_token) {
    std::vector<std::string> out(given.begin(), given.end());
    const bool has_auth = std::any_of(given.begin(), given.end(), [](const std::string& h) { return istarts_with(h, "authorization:"); });
    const std::string host = host_of(url);
    if (!has_auth && hf_token && *hf_token && istarts_with(url, "https://") &&
        (is_domain_or_sub(host, "huggingface.co") || is_domain_or_sub(host, "hf.co")))
        out.push_back(fmt::format("Authorization: Bearer {}", hf_token));
    return out;
}

// ---- one connection -----------------------------------------------------------------------

// A curl handle kept for all of a file's requests, so they share one connection.
class Connection {
public:
    Connection(std::string url, const std::vector<std::string>& headers) : url_(std::move(url)) {
        init_curl();
        h_ = curl_easy_init();
        if (!h_) throw Error(url_, std::nullopt, "libcurl could not start a transfer");
        for (const std::string& line : request_headers(url_, headers, std::getenv("HF_TOKEN"))) list_ = curl_slist_append(list_, line.c_str());
        curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
        curl_easy_setopt(h_, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h_, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h_, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(h_, CURLOPT_HTTPHEADER, list_);
        curl_easy_setopt(h_, CURLOPT_USERAGENT, "ggufkit/0.1.0");
        curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(h_, CURLOPT_LOW_SPEED_LIMIT, 1L);  // nothing for a minute: a stalled transfer
        curl_easy_setopt(h_, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, error_);
        curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, &Connection::on_header);
        curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &Connection::on_body);
    }
    ~Connection() {
        curl_easy_cleanup(h_);
        curl_slist_free_all(list_);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const std::string& url() const { return url_; }
    Transfer transfer() const { return transfer_; }

    // Bytes [start, end) into `out`, the connection tried again where it dropped. Returns
    // how many arrived: end - start, or fewer where the file ends first. The file's size is
    // set into `size`. With `whole_ok` (the first read of a file, start 0) a server that
    // ignores Range may answer with the whole file when it is no larger than asked;
    // `whole` tells that it did.
    uint64_t read(uint64_t start, uint64_t end, uint8_t* out, bool whole_ok, uint64_t& size, bool& whole) {
        uint64_t got = 0;
        int failures = 0, all_failures = 0;  // in a row (no byte arriving), and in all
        whole = false;
        for (;;) {
            Reply r = get(start + got, end, out + got, whole_ok && got == 0);
            if (whole_ok && r.status == 416 && r.total == uint64_t{0}) {  // an empty file: the reader says what that means
                size = 0;
                return 0;
            }
            if (r.whole) {
                if (r.code == CURLE_OK) {
                    whole = true;
                    size = r.received;
                    return r.received;
                }
            } else if (r.status == 206 && r.total) {
                size = *r.total;
                if (size <= start) throw Error(url_, start, fmt::format("the file changed on the server while being read: it now has {} bytes", size));
                got += r.received;
                const uint64_t want = std::min(end, size) - start;
                if (got >= want) return want;
                if (r.received > 0) failures = 0;
                if (r.code == CURLE_OK && r.received > 0) continue;  // a shorter range than asked: ask for the rest
            }
            const bool busy = r.code == CURLE_OK && (r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504);
            if (!busy && (r.code == CURLE_OK || !transient(r.code))) failure(r, start + got, end);
            ++failures;
            ++all_failures;
            if (failures == kAttempts || all_failures == kMaxFailures)
                throw Error(url_, start + got, busy ? fmt::format("the server stayed busy (HTTP {}) over {} tries for bytes {}-{}", r.status, all_failures, start, end - 1)
                                                    : fmt::format("the connection dropped {} times while reading bytes {}-{} ({} of {} arrived): {}",
                                                                  all_failures, start, end - 1, got, end - start, r.message));
            const long wait_ms = busy ? 1000 * std::min(kMaxRetryAfter, r.retry_after.value_or(failures)) : 50 * failures;
            std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
        }
    }

private:
    // One response, as the callbacks see it.
    struct Reply {
        Connection* c = nullptr;
        uint64_t start = 0, want = 0;
        uint8_t* out = nullptr;
        bool whole_ok = false;
        // From the headers of the last response (an earlier one was a redirect).
        long status = 0;
        std::optional<uint64_t> range_start, range_end, total, length;
        std::optional<long> retry_after;  // seconds
        // From the body.
        bool decided = false, whole = false;
        uint64_t received = 0;
        std::string refusal;  // why the body was refused
        CURLcode code = CURLE_OK;
        std::string message;  // libcurl's, for a failed transfer
    };

    static size_t on_header(char* data, size_t size, size_t n, void* user) {
        Reply& r = *static_cast<Reply*>(user);
        const std::string_view line = trim(std::string_view(data, size * n));
        if (istarts_with(line, "HTTP/")) {  // a new response: forget the last one's
            const size_t sp = line.find(' ');
            r.status = sp == std::string_view::npos ? 0 : static_cast<long>(number(line.substr(sp + 1, 3)).value_or(0));
            r.range_start = r.range_end = r.total = r.length = std::nullopt;
            r.retry_after = std::nullopt;
        } else if (istarts_with(line, "content-range:")) {
            std::string_view v = trim(line.substr(14));  // bytes A-B/TOTAL, or bytes */TOTAL with a 416
            if (istarts_with(v, "bytes ")) {
                v = trim(v.substr(6));
                if (v.starts_with("*/")) r.total = number(v.substr(2));
                const size_t dash = v.find('-'), slash = v.find('/');
                if (dash != std::string_view::npos && slash != std::string_view::npos && dash < slash) {
                    r.range_start = number(v.substr(0, dash));
                    r.range_end = number(v.substr(dash + 1, slash - dash - 1));
                    r.total = number(v.substr(slash + 1));
                }
            }
        } else if (istarts_with(line, "content-length:")) {
            r.length = number(trim(line.substr(15)));
        } else if (istarts_with(line, "retry-after:")) {  // seconds (an HTTP date is not waited for)
            if (auto s = number(trim(line.substr(12)))) r.retry_after = static_cast<long>(std::min<uint64_t>(*s, kMaxRetryAfter));
        }
        return size * n;
    }

    static size_t on_body(char* data, size_t size, size_t n, void* user) {
        Reply& r = *static_cast<Reply*>(user);
        const uint64_t bytes = size * n;
        r.c->transfer_.bytes += bytes;
        if (!r.decided) {
            r.decided = true;
            if (r.status == 206) {
                if (!r.range_start || !r.range_end || !r.total)
                    r.refusal = "the server's partial answer has no Content-Range with the file's size (bytes A-B/SIZE)";
                else if (*r.range_start != r.start)
                    r.refusal = fmt::format("the server answered with bytes from {} when bytes from {} were asked for", *r.range_start, r.start);
                else if (*r.range_end < *r.range_start || *r.total <= *r.range_end)
                    r.refusal = fmt::format("the server's Content-Range (bytes {}-{}/{}) is not a range of a file of that size", *r.range_start,
                                            *r.range_end, *r.total);
            } else if (r.status == 200) {
                if (r.whole_ok && (!r.length || *r.length <= r.want)) r.whole = true;
                else r.refusal = ignored_ranges(r);
            }
            if (!r.refusal.empty()) return 0;
        }
        if (r.status != 206 && !r.whole) return bytes;  // an error page: the status tells
        if (bytes > r.want - r.received) {
            r.refusal = r.whole ? ignored_ranges(r) : fmt::format("the server sent more than the {} bytes asked for", r.want);
            return 0;
        }
        std::memcpy(r.out + r.received, data, bytes);
        r.received += bytes;
        return bytes;
    }

    static std::string ignored_ranges(const Reply& r) {
        return fmt::format("the server does not honour range requests: it answered HTTP 200 with the whole file{} to a request for bytes {}-{}; "
                           "reading a part of a file over HTTP needs a server that does",
                           r.length ? fmt::format(" ({} bytes)", *r.length) : std::string(), r.start, r.start + r.want - 1);
    }

    Reply get(uint64_t start, uint64_t end, uint8_t* out, bool whole_ok) {
        Reply r;
        r.c = this;
        r.start = start;
        r.want = end - start;
        r.out = out;
        r.whole_ok = whole_ok;
        const std::string range = fmt::format("{}-{}", start, end - 1);
        curl_easy_setopt(h_, CURLOPT_RANGE, range.c_str());
        curl_easy_setopt(h_, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(h_, CURLOPT_WRITEDATA, &r);
        error_[0] = 0;
        ++transfer_.requests;
        r.code = curl_easy_perform(h_);
        curl_easy_setopt(h_, CURLOPT_HEADERDATA, nullptr);  // r is gone when this returns
        curl_easy_setopt(h_, CURLOPT_WRITEDATA, nullptr);
        if (!r.refusal.empty()) throw Error(url_, start == 0 ? std::nullopt : std::optional<uint64_t>(start), r.refusal);
        if (r.code != CURLE_OK) r.message = error_[0] ? error_ : curl_easy_strerror(r.code);
        return r;
    }

    // Throws the error a response that brought nothing usable stands for.
    [[noreturn]] void failure(const Reply& r, uint64_t start, uint64_t end) const {
        if (r.code != CURLE_OK) throw Error(url_, start, fmt::format("cannot read bytes {}-{}: {}", start, end - 1, r.message));
        switch (r.status) {
            case 401:
            case 403:
                throw Error(url_, std::nullopt, fmt::format("access denied (HTTP {}): a gated or private model needs a token: "
                                                            "--header \"Authorization: Bearer TOKEN\", or HF_TOKEN for huggingface.co", r.status));
            case 404: throw Error(url_, std::nullopt, "not found (HTTP 404)");
            case 416:
                if (start == 0) throw Error(url_, std::nullopt, "the server has no first bytes of the file (HTTP 416)");
                throw Error(url_, start, fmt::format("the server has no bytes {}-{} (HTTP 416): the file is shorter than it was", start, end - 1));
            case 206: throw Error(url_, start, fmt::format("the server answered bytes {}-{} with nothing", start, end - 1));
            default: throw Error(url_, start, fmt::format("HTTP {} for bytes {}-{}", r.status, start, end - 1));
        }
    }

    std::string url_;
    CURL* h_ = nullptr;
    curl_slist* list_ = nullptr;
    char error_[CURL_ERROR_SIZE] = {};
    Transfer transfer_;
};

// ---- the file -----------------------------------------------------------------------------

RemoteFile::RemoteFile(std::string url, std::vector<std::string> headers)
    : url_(std::move(url)), connection_(std::make_unique<Connection>(url_, headers)) {}

RemoteFile::~RemoteFile() {
    if (data_) ::munmap(data_, size_);
}

std::unique_ptr<RemoteFile> RemoteFile::open(const std::string& url, std::vector<std::string> headers, uint64_t first_read) {
    std::unique_ptr<RemoteFile> f(new RemoteFile(url, std::move(headers)));
    std::vector<uint8_t> first(std::max<uint64_t>(first_read, 1));
    uint64_t size = 0;
    bool whole = false;
    const uint64_t got = f->connection_->read(0, first.size(), first.data(), true, size, whole);
    f->size_ = size;
    if (size > 0) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            throw Error(url, std::nullopt, fmt::format("cannot reserve {} bytes of address space for the file: {}", size, std::strerror(errno)));
        f->data_ = static_cast<uint8_t*>(p);
        std::memcpy(f->data_, first.data(), got);
        f->held_[0] = got;
    }
    f->prefix_ = got;
    return f;
}

std::optional<Transfer> RemoteFile::transfer() const {
    const std::lock_guard<std::mutex> hold(lock_);
    return connection_->transfer();
}

void RemoteFile::extend_prefix(uint64_t end) {
    end = std::min(end, size_);
    if (end <= prefix_) return;
    ensure(prefix_, end - prefix_);
    prefix_ = end;
}

void RemoteFile::ensure(uint64_t offset, uint64_t n) const {
    if (n == 0 || offset >= size_) return;
    const uint64_t end = offset + std::min(n, size_ - offset);
    const std::lock_guard<std::mutex> hold(lock_);
    for (uint64_t pos = offset; pos < end;) {
        auto next = held_.upper_bound(pos);  // the first range starting after pos
        if (next != held_.begin() && std::prev(next)->second > pos) {
            pos = std::prev(next)->second;
            continue;
        }
        const uint64_t gap_end = next == held_.end() ? end : std::min(end, next->first);
        fetch(pos, gap_end);
        pos = gap_end;
    }
}

void RemoteFile::release(uint64_t offset, uint64_t n) const {
    if (n == 0 || offset >= size_) return;
    static const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t from = (offset + page - 1) / page * page, to = std::min(size_, offset + n) / page * page;  // data_ is page-aligned
    if (to <= from) return;
    const std::lock_guard<std::mutex> hold(lock_);
    ::madvise(data_ + from, to - from, MADV_DONTNEED);
    auto it = held_.upper_bound(from);
    if (it != held_.begin()) --it;
    while (it != held_.end() && it->first < to) {
        const uint64_t s = it->first, e = it->second;
        it = held_.erase(it);
        if (s < from) held_[s] = std::min(e, from);
        if (e > to) {
            held_[to] = e;
            break;
        }
    }
}

void RemoteFile::fetch(uint64_t start, uint64_t end) const {
    uint64_t size = 0;
    bool whole = false;
    const uint64_t got = connection_->read(start, end, data_ + start, false, size, whole);
    if (size != size_)
        throw Error(url_, start, fmt::format("the file changed on the server while being read: its size was {} bytes, now {}", size_, size));
    if (got != end - start) throw Error(url_, start, fmt::format("the server sent {} of bytes {}-{}", got, start, end - 1));
    // Held ranges merged with those they touch.
    uint64_t s = start, e = end;
    auto it = held_.upper_bound(s);
    if (it != held_.begin() && std::prev(it)->second >= s) {
        --it;
        s = it->first;
        e = std::max(e, it->second);
        it = held_.erase(it);
    }
    while (it != held_.end() && it->first <= e) {
        e = std::max(e, it->second);
        it = held_.erase(it);
    }
    held_[s] = e;
}

}  // namespace gguf::http
