// The memory a llama.cpp runtime sets aside for a model on the CPU: the weights' buffers,
// the context's caches (KV cache per layer, sliding-window layers' smaller caches, recurrent
// states), the output buffer and an estimate of the compute buffer, by the rules
// spec/memory.md states. Everything but the compute buffer is exact arithmetic on the
// file's header; the compute buffer depends on ggml's graph allocator and is an estimate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/model.h"
#include "gguf/types.h"

namespace gguf {

struct MemoryOptions {
    uint32_t n_ctx = 4096;        // -c; 0: the model's context_length
    uint32_t n_batch = 2048;      // -b
    uint32_t n_ubatch = 512;      // -ub
    uint32_t n_seq = 1;           // --parallel: sequences decoded together
    bool kv_unified = false;      // --kv-unified: one cache shared by the sequences
    TypeId type_k = TypeId::F16;  // --cache-type-k
    TypeId type_v = TypeId::F16;  // --cache-type-v
    bool flash_attn = true;       // -fa; "auto" is on for a CPU
    bool swa_full = false;        // --swa-full: sliding-window layers get full-size caches
    bool mmap = true;             // --no-mmap turns it off
    bool embeddings = false;      // --embeddings: the output buffer also holds embeddings
    // The CPU's weight repacking (llama.cpp's CPU_REPACK buffer; --no-repack turns it off):
    // which instruction sets the machine has.
    bool repack_avx2 = false, repack_avx512 = false;
};

// One of the weights' buffers, as llama.cpp's log names them.
struct WeightBuffer {
    std::string name;      // "CPU_Mapped" (mmap: the span of the file its tensors lie in), "CPU_REPACK", "CPU"
    uint32_t part = 0;     // the split part (CPU_Mapped), 0 otherwise
    uint64_t bytes = 0;
    uint64_t tensors = 0;
};

enum class LayerCache : uint8_t { Full, Sliding, Recurrent, Both, None };

struct LayerMemory {
    LayerCache cache = LayerCache::Full;
    uint32_t cells = 0;               // KV cells per stream (attention layers)
    uint64_t k_bytes = 0, v_bytes = 0;
    uint64_t r_bytes = 0, s_bytes = 0;  // recurrent state: the convolution (R) and scan (S) parts
};

struct MemoryEstimate {
    // The context as llama.cpp settles it.
    uint32_t n_ctx = 0, n_ctx_seq = 0, n_stream = 1, n_tokens = 0;  // n_tokens: the batch the compute buffer is sized for
    uint32_t kv_cells = 0, swa_cells = 0, swa_window = 0, rs_cells = 0;
    uint32_t n_vocab = 0;
    bool flash_attn = true;
    TypeId type_k = TypeId::F16, type_v = TypeId::F16;

    std::vector<WeightBuffer> weights;
    std::vector<LayerMemory> layers;  // one per block
    uint64_t kv_k = 0, kv_v = 0;      // every attention layer's K and V (full and sliding)
    uint64_t swa_k = 0, swa_v = 0;    // the sliding-window layers' part of them
    uint64_t rs_r = 0, rs_s = 0;      // recurrent states
    uint64_t output = 0;              // logits (and embeddings) of n_seq outputs, f32
    uint64_t compute = 0;             // estimate
    std::vector<std::string> notes;   // what the figures assume or leave out

    uint32_t layers_with(LayerCache c) const;
    uint64_t weight_bytes() const;
    uint64_t total() const { return weight_bytes() + kv_k + kv_v + rs_r + rs_s + output + compute; }
};

// Throws gguf::Error naming the file and key for a model whose header does not say what
// the estimate needs (no block_count, an array of the wrong length, a value past 32 bits),
// std::invalid_argument for options that cannot hold (a cache type whose blocks do not
// divide a K or V row, more sequences than cells).
MemoryEstimate estimate_memory(const Model& m, const MemoryOptions& o);

// The KV cache one token of context takes in f16 in the layers that attend to the whole
// context (what grows with -c), and how many layers keep something else: sliding-window
// layers (their caches stop growing at the window) and recurrent ones (a fixed state).
struct KvPerToken {
    uint64_t full_bytes_per_token = 0;
    uint32_t full_layers = 0, sliding_layers = 0, recurrent_layers = 0;
};
KvPerToken kv_per_token(const Model& m);

}  // namespace gguf
