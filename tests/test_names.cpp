// What tensor names say: the layer of blk.N tensors, token embeddings.
#include <doctest/doctest.h>

#include "gguf/names.h"

using gguf::is_token_embedding;
using gguf::layer_of;

TEST_CASE("layer_of reads N from blk.N.<rest>") {
    CHECK(layer_of("blk.0.attn_q.weight") == 0u);
    CHECK(layer_of("blk.17.ffn_down_exps.weight") == 17u);
    CHECK(layer_of("blk.007.attn_k.weight") == 7u);  // leading zeros are still digits
    CHECK(layer_of("blk.4294967295.x") == 4294967295u);
    CHECK(layer_of("blk.1.") == 1u);
}

TEST_CASE("layer_of refuses what is not blk, digits, dot") {
    CHECK_FALSE(layer_of("token_embd.weight"));
    CHECK_FALSE(layer_of("output.weight"));
    CHECK_FALSE(layer_of("blk..attn_q.weight"));  // no digits
    CHECK_FALSE(layer_of("blk.-1.attn_q.weight"));  // no sign
    CHECK_FALSE(layer_of("blk.+1.attn_q.weight"));
    CHECK_FALSE(layer_of("blk. 1.attn_q.weight"));  // no spaces
    CHECK_FALSE(layer_of("blk.1x.attn_q.weight"));  // digits must end at the dot
    CHECK_FALSE(layer_of("blk.3"));  // no dot after N
    CHECK_FALSE(layer_of("blk."));
    CHECK_FALSE(layer_of("BLK.1.attn_q.weight"));
    CHECK_FALSE(layer_of("mm.blk.1.weight"));
    CHECK_FALSE(layer_of("blk.4294967296.x"));  // past 32 bits
    CHECK_FALSE(layer_of("blk.99999999999999999999999.x"));  // would overflow 64 bits too
}

TEST_CASE("token embeddings are token_embd.weight and per_layer_token_embd.weight, by exact name") {
    CHECK(is_token_embedding("token_embd.weight"));
    CHECK(is_token_embedding("per_layer_token_embd.weight"));
    CHECK_FALSE(is_token_embedding("token_embd_norm.weight"));
    CHECK_FALSE(is_token_embedding("token_embd.bias"));
    CHECK_FALSE(is_token_embedding("output.weight"));
    CHECK_FALSE(is_token_embedding("blk.0.token_embd.weight"));
    CHECK_FALSE(is_token_embedding(""));
}
