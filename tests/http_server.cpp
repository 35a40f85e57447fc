#include "http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace test {

namespace {

bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool send_text(int fd, const std::string& s) { return send_all(fd, s.data(), s.size()); }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

HttpServer::HttpServer() {
    // libcurl honours http_proxy: requests to this server (the tests' own and the gguf they
    // run, which inherits the environment) must not go to one.
    ::setenv("no_proxy", "127.0.0.1,localhost", 1);
    ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw std::runtime_error("test HTTP server: socket() failed");
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0)
        throw std::runtime_error(fmt::format("test HTTP server: cannot listen on 127.0.0.1: {}", std::strerror(errno)));
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

HttpServer::~HttpServer() {
    stop_ = true;
    acceptor_.join();
    {
        const std::lock_guard<std::mutex> hold(lock_);
        for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : connections_) t.join();
    ::close(listener_);
}

void HttpServer::add(const std::string& path, std::vector<uint8_t> bytes) {
    auto r = std::make_shared<Resource>();
    r->size = bytes.size();
    r->head = std::move(bytes);
    const std::lock_guard<std::mutex> hold(lock_);
    files_[path] = std::move(r);
}

void HttpServer::add_sparse(const std::string& path, std::vector<uint8_t> head, uint64_t size) {
    auto r = std::make_shared<Resource>();
    r->size = std::max<uint64_t>(size, head.size());
    r->head = std::move(head);
    const std::lock_guard<std::mutex> hold(lock_);
    files_[path] = std::move(r);
}

void HttpServer::redirect(const std::string& from, const std::string& to) {
    auto r = std::make_shared<Resource>();
    r->redirect = to;
    const std::lock_guard<std::mutex> hold(lock_);
    files_[from] = std::move(r);
}

void HttpServer::require_header(std::string line) {
    const std::lock_guard<std::mutex> hold(lock_);
    required_ = std::move(line);
}

std::string HttpServer::url(const std::string& path) const { return fmt::format("http://127.0.0.1:{}{}", port_, path); }

std::vector<std::string> HttpServer::request_lines() const {
    const std::lock_guard<std::mutex> hold(lock_);
    return log_;
}

std::vector<std::string> HttpServer::last_headers() const {
    const std::lock_guard<std::mutex> hold(lock_);
    return last_headers_;
}

void HttpServer::accept_loop() {
    while (!stop_) {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        const std::lock_guard<std::mutex> hold(lock_);
        open_fds_.push_back(fd);
        connections_.emplace_back([this, fd] { serve(fd); });
    }
}

// Requests one after another on a kept-alive connection, until the client closes it, a
// response drops it, or the server stops.
void HttpServer::serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (!stop_) {
        const size_t end = buffer.find("\r\n\r\n");
        if (end != std::string::npos) {
            const std::string request = buffer.substr(0, end);
            buffer.erase(0, end + 4);
            if (!respond(fd, request)) break;
            continue;
        }
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
    }
    const std::lock_guard<std::mutex> hold(lock_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    ::close(fd);
}

bool HttpServer::respond(int fd, const std::string& request) {
    ++requests_;
    std::vector<std::string> lines;
    for (size_t at = 0; at <= request.size();) {
        size_t nl = request.find("\r\n", at);
        if (nl == std::string::npos) nl = request.size();
        lines.push_back(request.substr(at, nl - at));
        at = nl + 2;
    }
    const std::string& first = lines.front();  // GET /path HTTP/1.1
    const size_t sp1 = first.find(' '), sp2 = first.find(' ', sp1 + 1);
    std::string path = first.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    std::optional<std::string> range;
    for (size_t i = 1; i < lines.size(); ++i)
        if (lower(lines[i]).starts_with("range:")) range = lines[i].substr(lines[i].find_first_not_of(' ', 6));
    std::shared_ptr<const Resource> file;
    std::string required;
    {
        const std::lock_guard<std::mutex> hold(lock_);
        log_.push_back(fmt::format("GET {}{}", path, range ? " Range: " + *range : ""));
        last_headers_.assign(lines.begin() + 1, lines.end());
        if (auto it = files_.find(path); it != files_.end()) file = it->second;
        required = required_;
    }
    auto empty_reply = [&](std::string_view status, std::string extra = {}) {
        return send_text(fd, fmt::format("HTTP/1.1 {}\r\n{}Content-Length: 0\r\n\r\n", status, extra));
    };
    if (!required.empty() && std::find(lines.begin() + 1, lines.end(), required) == lines.end())
        return empty_reply("401 Unauthorized");
    for (int b = busy.load(); b > 0;)
        if (busy.compare_exchange_weak(b, b - 1)) return empty_reply("503 Service Unavailable", "Retry-After: 0\r\n");
    if (!file) return empty_reply("404 Not Found");
    if (!file->redirect.empty()) return empty_reply("302 Found", fmt::format("Location: {}\r\n", url(file->redirect)));

    uint64_t from = 0, to = file->size;  // [from, to)
    bool partial = false;
    if (range && ranges == Ranges::Honour) {
        // bytes=A-B or bytes=A-
        const std::string r = range->substr(range->find('=') + 1);
        const size_t dash = r.find('-');
        from = std::stoull(r.substr(0, dash));
        const std::string last = r.substr(dash + 1);
        if (from >= file->size) return empty_reply("416 Range Not Satisfiable", fmt::format("Content-Range: bytes */{}\r\n", file->size));
        to = last.empty() ? file->size : std::min<uint64_t>(file->size, std::stoull(last) + 1);
        partial = true;
    }
    std::string head = partial ? fmt::format("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {}-{}/{}\r\n", from, to - 1, file->size)
                               : std::string("HTTP/1.1 200 OK\r\n");
    head += fmt::format("Content-Length: {}\r\nAccept-Ranges: {}\r\n\r\n", to - from, ranges == Ranges::Honour ? "bytes" : "none");
    if (!send_text(fd, head)) return false;
    uint64_t limit = to;
    bool drop = false;
    for (int d = drops.load(); d > 0;)
        if (drops.compare_exchange_weak(d, d - 1)) {
            drop = true;
            limit = std::min(to, from + drop_after.load());
            break;
        }
    std::vector<char> buffer(1 << 16);
    for (uint64_t at = from; at < limit && !stop_;) {
        const uint64_t n = std::min<uint64_t>(buffer.size(), limit - at);
        for (uint64_t i = 0; i < n; ++i) buffer[i] = at + i < file->head.size() ? static_cast<char>(file->head[at + i]) : 0;
        body_bytes_ += n;  // counted first: the client may have it all before send returns
        if (!send_all(fd, buffer.data(), n)) return false;
        at += n;
    }
    if (drop) {
        ::shutdown(fd, SHUT_RDWR);
        return false;
    }
    return !stop_;
}

}  // namespace test
