// Helpers of the tokenizer-conversion tests: JSON text, SentencePiece protobuf bytes, and
// the converted keys as a GGUF file (for infer::Tokenizer and for comparing values).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "convert/hf_tokenizer.h"
#include "gguf/file.h"
#include "gguf/writer.h"

namespace test {

// A JSON string literal of `s` (UTF-8 passes through).
inline std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// Protocol-buffer bytes, written field by field.
struct Proto {
    std::string bytes;
    void varint(uint64_t v) {
        while (v >= 0x80) {
            bytes += static_cast<char>((v & 0x7F) | 0x80);
            v >>= 7;
        }
        bytes += static_cast<char>(v);
    }
    void key(uint32_t field, uint32_t wire) { varint(uint64_t{field} << 3 | wire); }
    void string_field(uint32_t field, std::string_view s) {
        key(field, 2);
        varint(s.size());
        bytes += s;
    }
    void float_field(uint32_t field, float f) {
        key(field, 5);
        uint32_t b;
        std::memcpy(&b, &f, 4);
        for (int i = 0; i < 4; ++i) bytes += static_cast<char>(b >> (8 * i));
    }
    void varint_field(uint32_t field, uint64_t v) {
        key(field, 0);
        varint(v);
    }
};

// A SentencePiece ModelProto holding `pieces` (field 1), plus a trainer_spec (field 2) and
// normalizer_spec (field 3) the reader must skip.
inline std::string sentencepiece_model(const std::vector<convert::SentencePiece>& pieces) {
    Proto model;
    for (const auto& p : pieces) {
        Proto piece;
        piece.string_field(1, p.piece);
        piece.float_field(2, p.score);
        if (p.type != convert::SentencePiece::Type::Normal) piece.varint_field(3, static_cast<uint64_t>(p.type));
        model.string_field(1, piece.bytes);
    }
    Proto trainer;
    trainer.varint_field(3, 2);   // model_type BPE
    trainer.varint_field(40, 0);  // unk_id
    model.string_field(2, trainer.bytes);
    Proto normalizer;
    normalizer.string_field(1, "identity");
    normalizer.varint_field(3, 1);  // add_dummy_prefix
    model.string_field(3, normalizer.bytes);
    return model.bytes;
}

// The keys written into a GGUF file in memory, as the converter's Writer would hold them.
struct ConvertedFile {
    std::vector<uint8_t> bytes;
    gguf::File file;
};
inline ConvertedFile as_gguf(const convert::TokenizerKeys& keys) {
    gguf::Writer w;
    w.set("general.architecture", gguf::OwnedValue::string("llama"));
    for (const auto& [key, value] : keys.keys) w.set(key, value);
    std::vector<uint8_t> bytes = w.write_to_memory();
    gguf::File f = gguf::File::parse(bytes, "converted");
    return {std::move(bytes), std::move(f)};
}

// Two values the same: type, and the bytes as a file stores them.
inline bool same_value(const gguf::Value& a, const gguf::Value& b) {
    if (a.type() != b.type()) return false;
    switch (a.type()) {
    case gguf::ValueType::String: return a.str() == b.str();
    case gguf::ValueType::Array: {
        const auto x = a.array(), y = b.array();
        return x.element_type() == y.element_type() && x.size() == y.size() && x.byte_size() == y.byte_size() &&
               std::memcmp(x.bytes().data(), y.bytes().data(), x.bytes().size()) == 0;
    }
    default: return a.raw_bits() == b.raw_bits();
    }
}

}  // namespace test
