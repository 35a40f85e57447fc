// What the fuzz harnesses and the corpus replay test do with an input: everything a tool
// may do with a file it was handed. Shared so the replay runs exactly what the fuzzer ran.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gguf::fuzz {

// Opens `data` strictly and leniently, walks every key, value, array element and tensor
// info, runs the metadata checks, reads every readable tensor's bytes and, when the strict
// open succeeds, writes the file again and requires the copy to read back the same.
// Aborts on any inconsistency; gguf::Error on bad input is the expected outcome.
void open_and_walk(const uint8_t* data, size_t size);

// The first byte picks a tensor type, the rest is its data: check_data (one and two
// threads, which must agree) and dequantize over the whole blocks.
void check_and_dequantize(const uint8_t* data, size_t size);

// Any bytes as a .gguf.zst: the seek table and index read, and each frame of at most 4 MiB
// decompressed (checksums checked). gguf::Error on bad input is the expected outcome;
// frames out of order or past the container abort.
void read_container(const uint8_t* data, size_t size);

}  // namespace gguf::fuzz
