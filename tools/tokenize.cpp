#include "tokenize.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "gguf/model.h"
#include "infer/tokenizer.h"
#include "json.h"
#include "options.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    std::string file;
    bool from_stdin = false;
    bool ids = false;
    bool json = false;
    bool no_bos = false;
    bool no_parse_special = false;
    bool no_escape = false;
    bool show_count = false;
};

// The escapes llama-tokenize reads in a prompt given on the command line: \n \r \t \' \" \\ \xHH.
std::string process_escapes(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out += s[i];
            continue;
        }
        const char c = s[++i];
        switch (c) {
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case '\'': case '"': case '\\': out += c; break;
        case 'x':
            if (i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) && std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
                out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
                i += 2;
                break;
            }
            [[fallthrough]];
        default:
            out += '\\';
            out += c;
        }
    }
    return out;
}

std::string read_all(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()); }

std::string input_text(const TokenizeOptions& o) {
    const int sources = !o.text.empty() + !o.file.empty() + o.from_stdin;
    if (sources != 1) throw CLI::ValidationError("give the text as an argument (or -p), -f FILE or --stdin: exactly one of them");
    if (!o.file.empty()) return read_text_file(o.file);
    if (o.from_stdin) return read_all(std::cin);
    return o.no_escape ? o.text : process_escapes(o.text);
}

void print_ids(const std::vector<infer::TokenId>& ids) {
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

void print_json(const TokenizeOptions& o, const infer::Tokenizer& tok, const std::vector<infer::TokenId>& ids) {
    Json j;
    j.begin_object();
    j.field("file", o.model);
    j.field("model", tok.model_name());
    j.field("pre", tok.pre_name());
    j.field("vocabulary", uint64_t{tok.size()});
    j.field("count", uint64_t{ids.size()});
    if (o.ids) {
        j.key("ids").begin_array();
        for (auto id : ids) j.value(int64_t{id});
        j.end_array();
    } else {
        j.key("tokens").begin_array();
        for (auto id : ids) {
            j.begin_object();
            j.field("id", int64_t{id});
            j.field("piece", tok.piece(id));
            j.field("text", tok.token_to_text(id, true));
            j.end_object();
        }
        j.end_array();
    }
    j.end_object();
    const std::string out = j.str() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

int tokenize(const TokenizeOptions& o) {
    const std::string text = input_text(o);
    const Model m = Model::open(o.model);
    const infer::Tokenizer tok = infer::Tokenizer::from_gguf(m);
    std::vector<infer::TokenId> ids;
    // --no-bos: never a BOS token; EOS still where the vocabulary adds one.
    if (o.no_bos) {
        tok.encode(text, false, !o.no_parse_special, ids);
        if (tok.add_eos() && tok.eos()) ids.push_back(*tok.eos());
    } else {
        tok.encode(text, true, !o.no_parse_special, ids);
    }
    if (o.json) {
        print_json(o, tok, ids);
    } else if (o.ids) {
        print_ids(ids);
    } else {
        std::string out;
        for (auto id : ids) out += fmt::format("{:6} -> '{}'\n", id, tok.token_to_text(id, true));
        std::fwrite(out.data(), 1, out.size(), stdout);
    }
    if (o.show_count && !o.json) std::printf("Total number of tokens: %zu\n", ids.size());
    report_transfer(m);
    return 0;
}

}  // namespace

void add_tokenize(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<TokenizeOptions>();
    CLI::App* c = app.add_subcommand("tokenize", "Tokenize a text with a model's own vocabulary (tokenizer.ggml.*), as llama-tokenize does");
    c->add_option("model", o->model, "GGUF file (any part of a split set, a .gguf.zst, an http(s):// URL); only its metadata is read")->required();
    c->add_option("text", o->text, "The text to tokenize (\\n, \\t, \\xHH... are read as escapes unless --no-escape)");
    c->add_option("-p,--prompt", o->text, "The text, as an option (as llama-tokenize takes it)");
    c->add_option("-f,--file", o->file, "Tokenize this file's bytes (read as they are, no escapes)");
    c->add_flag("--stdin", o->from_stdin, "Tokenize standard input");
    c->add_flag("--ids", o->ids, "Print only the token ids, as [1, 2, 3] (llama-tokenize --ids)");
    c->add_flag("--json", o->json, "Print JSON: file, model, pre, vocabulary, count, and tokens (id, piece, text) or with --ids the ids");
    c->add_flag("--no-bos", o->no_bos, "Never add a BOS token, even where the vocabulary asks for one");
    c->add_flag("--no-parse-special", o->no_parse_special, "Read control tokens written in the text (<s>, <|im_start|>) as plain text");
    c->add_flag("--no-escape", o->no_escape, "Take the text argument as it is, without reading escapes");
    c->add_flag("--show-count", o->show_count, "Print the total number of tokens at the end");
    add_header_option(c);
    c->footer("Token ids follow llama.cpp's tokenizers: SentencePiece (llama), byte-level BPE (gpt2) with the pre-tokenizer "
              "tokenizer.ggml.pre names, and WordPiece (bert). Control tokens written in the text are parsed as tokens "
              "(llama-tokenize's default) unless --no-parse-special.");
    c->callback([o, &run] { run = [o] { return tokenize(*o); }; });
}

}  // namespace gguf::tools
