// A small HTTP/1.1 server on 127.0.0.1 for the tests of reading GGUF files over HTTP: it
// serves files from memory with or without honouring Range, can drop connections part-way
// through a body, require a header, redirect, and counts what it sends.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace test {

class HttpServer {
public:
    enum class Ranges {
        Honour,  // 206 with Content-Range for a Range request
        Ignore,  // 200 with the whole file, whatever was asked
    };

    HttpServer();  // listens on an ephemeral port at once
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Serves `bytes` at `path` ("/model.gguf").
    void add(const std::string& path, std::vector<uint8_t> bytes);
    // Serves a file of `size` bytes whose first bytes are `head` and the rest zeros, made as
    // it is sent (a 100 GB model without 100 GB of memory).
    void add_sparse(const std::string& path, std::vector<uint8_t> head, uint64_t size);
    // Answers `from` with a 302 to `to` (a path on this server).
    void redirect(const std::string& from, const std::string& to);

    std::string url(const std::string& path) const;

    std::atomic<Ranges> ranges{Ranges::Honour};
    // Each of the next `drops` responses with a body is cut after `drop_after` body bytes
    // (the connection closed).
    std::atomic<int> drops{0};
    std::atomic<uint64_t> drop_after{0};
    // Each of the next `busy` requests is answered 503 with "Retry-After: 0".
    std::atomic<int> busy{0};
    // When set, a request without this exact header line ("Name: value") gets 401.
    void require_header(std::string line);

    uint64_t body_bytes() const { return body_bytes_; }  // body bytes sent in all
    uint64_t requests() const { return requests_; }
    std::vector<std::string> request_lines() const;  // "GET /path Range: bytes=a-b" per request, in order
    std::vector<std::string> last_headers() const;    // the last request's header lines

private:
    struct Resource {
        std::vector<uint8_t> head;
        uint64_t size = 0;
        std::string redirect;
    };
    void accept_loop();
    void serve(int fd);
    bool respond(int fd, const std::string& request);

    int listener_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    mutable std::mutex lock_;
    std::map<std::string, std::shared_ptr<const Resource>> files_;
    std::string required_;
    std::vector<std::thread> connections_;
    std::vector<int> open_fds_;
    std::vector<std::string> log_;
    std::vector<std::string> last_headers_;
    std::atomic<uint64_t> body_bytes_{0}, requests_{0};
};

}  // namespace test
