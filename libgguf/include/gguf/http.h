// GGUF files over HTTP(S): File::open and Model::open take an http:// or https:// URL and
// read it with range requests, the header first (a first read, grown until the header
// parses) and each tensor's bytes only when tensor_data() asks for them. So `gguf inspect
// URL` moves about the header's size, whatever the model's.
//
// libcurl does the transfers: redirects are followed (the Hugging Face hub answers with one
// to its storage), a connection that drops is resumed where it stopped (a few attempts), and
// a server that ignores Range (answering 200 with the whole file) is refused with a clear
// error unless the whole file fits the first read.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gguf::http {

// Whether `s` names a file over HTTP: it starts with http:// or https:// (any case).
bool is_url(std::string_view s);

// The bytes the first request of a file asks for; the read grows from there to what the
// header needs (at least doubling each time).
inline constexpr uint64_t kFirstRead = 512 * 1024;
// The most a header may take over HTTP: a string length or count in a damaged header could
// otherwise make the reader fetch gigabytes before it can tell (real headers are a few MB).
inline constexpr uint64_t kMaxHeader = uint64_t{1} << 30;
// The first read of URLs opened from now on (at least 1; tests make it small).
void set_first_read(uint64_t bytes);
uint64_t first_read();

// What is wrong with a request header line, or "" when it is "Name: value".
std::string header_problem(std::string_view line);

// Request headers ("Name: value") every URL opened from now on sends, e.g. from the tools'
// --header. Throws std::invalid_argument for a line that is not "Name: value".
void set_headers(std::vector<std::string> headers);
std::vector<std::string> headers();

// The headers a request to `url` carries: `given`, and "Authorization: Bearer TOKEN" with
// `hf_token` (the HF_TOKEN variable; null or empty: none) when the URL is https:// on
// huggingface.co, hf.co or one of their subdomains and `given` holds no Authorization
// header. The token is never sent to another host, nor in clear text.
std::vector<std::string> request_headers(std::string_view url, std::span<const std::string> given, const char* hf_token);

// What a file opened from a URL cost in traffic so far.
struct Transfer {
    uint64_t bytes = 0;     // body bytes received (the file's bytes, retries included)
    uint64_t requests = 0;  // HTTP requests made (redirects not counted separately)
};

}  // namespace gguf::http
