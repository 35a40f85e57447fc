// Hugging Face tokenizers to GGUF tokenizer keys (see hf_tokenizer.h for the rules).
#include "convert/hf_tokenizer.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace convert {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what) { throw std::runtime_error(file.string() + ": " + what); }

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot be read");
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) fail(path, "read error");
    return std::move(s).str();
}

// ---------------------------------------------------------------------------------------
// JSON documents

// One parsed JSON file; its elements live as long as it does.
struct Json {
    fs::path path;
    simdjson::padded_string text;
    simdjson::dom::parser parser;
    simdjson::dom::element root;
};

// `text` with every integer of more than 19 digits (outside strings) given a ".0", so that
// it parses as a double: transformers writes model_max_length as 1e30 in integer digits
// (Llama 3's tokenizer_config.json), which Python reads and simdjson refuses as an integer.
std::string big_integers_as_doubles(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    bool in_string = false;
    for (size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (in_string) {
            out += c;
            if (c == '\\' && i + 1 < text.size()) out += text[++i];
            else if (c == '"') in_string = false;
            ++i;
        } else if (c == '"') {
            in_string = true;
            out += text[i++];
        } else if ((c >= '0' && c <= '9') || c == '-') {
            size_t end = i + 1;
            while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
            const bool fraction = end < text.size() && (text[end] == '.' || text[end] == 'e' || text[end] == 'E');
            out += text.substr(i, end - i);
            if (!fraction && end - i - (c == '-') > 19) out += ".0";
            i = end;
        } else {
            out += text[i++];
        }
    }
    return out;
}

// The file parsed, or nullptr when the folder has no such file.
std::unique_ptr<Json> load_json(const fs::path& path) {
    if (!fs::is_regular_file(path)) return nullptr;
    auto doc = std::make_unique<Json>();
    doc->path = path;
    std::string text = read_file(path);
    doc->text = simdjson::padded_string(text);
    const auto error = doc->parser.parse(doc->text).get(doc->root);
    if (!error) return doc;
    // Any failure is retried with big integers rewritten (simdjson versions name that
    // failure differently); the first error is the one reported.
    doc->text = simdjson::padded_string(big_integers_as_doubles(text));
    if (doc->parser.parse(doc->text).get(doc->root)) fail(path, std::string("not valid JSON (") + simdjson::error_message(error) + ")");
    return doc;
}

// A member of an object; absent when `e` is no object, lacks the key, or holds null there
// (as Python's dict.get gives None for both).
std::optional<simdjson::dom::element> member(simdjson::dom::element e, std::string_view key) {
    simdjson::dom::object o;
    simdjson::dom::element v;
    if (e.get(o) || o.at_key(key).get(v) || v.is_null()) return std::nullopt;
    return v;
}
std::optional<std::string_view> string_member(simdjson::dom::element e, std::string_view key) {
    std::string_view s;
    if (auto v = member(e, key); v && !v->get(s)) return s;
    return std::nullopt;
}
std::optional<bool> bool_member(simdjson::dom::element e, std::string_view key) {
    bool b;
    if (auto v = member(e, key); v && !v->get(b)) return b;
    return std::nullopt;
}
// An integer member (a JSON number without fraction); lists and strings are not.
std::optional<int64_t> int_member(simdjson::dom::element e, std::string_view key) {
    auto v = member(e, key);
    if (!v) return std::nullopt;
    int64_t i;
    if (v->is_int64() && !v->get(i)) return i;
    uint64_t u;
    if (v->is_uint64() && !v->get(u)) return static_cast<int64_t>(std::min<uint64_t>(u, INT64_MAX));
    return std::nullopt;
}
bool is_truthy(simdjson::dom::element e) {  // Python's truth of a JSON value
    switch (e.type()) {
    case simdjson::dom::element_type::NULL_VALUE: return false;
    case simdjson::dom::element_type::BOOL: return e.get_bool().value();
    case simdjson::dom::element_type::STRING: return !e.get_string().value().empty();
    case simdjson::dom::element_type::ARRAY: return e.get_array().value().size() > 0;
    case simdjson::dom::element_type::OBJECT: return e.get_object().value().size() > 0;
    case simdjson::dom::element_type::INT64: return e.get_int64().value() != 0;
    case simdjson::dom::element_type::UINT64: return e.get_uint64().value() != 0;
    case simdjson::dom::element_type::DOUBLE: return e.get_double().value() != 0;
    }
    return false;
}

// ---------------------------------------------------------------------------------------
// Added tokens and token types

// llama.cpp's list of added tokens that mean control although not marked special.
bool looks_special(std::string_view t) {
    if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
    if (t.starts_with("<|") && t.ends_with("|>")) return true;
    if (t.starts_with("<\xEF\xBD\x9C") && t.ends_with("\xEF\xBD\x9C>")) return true;  // "<｜" ... "｜>" (U+FF5C)
    return t.starts_with("<unused") && t.ends_with(">");
}

// A user-defined token is stored pre-normalized: SentencePiece's "▁" as a space.
std::string spaces_for_metaspace(std::string_view t) {
    std::string out;
    for (size_t i = 0; i < t.size();) {
        if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
            out += ' ';
            i += 3;
        } else {
            out += t[i++];
        }
    }
    return out;
}

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

struct AddedToken {
    int64_t id;
    std::string content;
    bool special;
};

std::vector<AddedToken> read_added_tokens(const Json& tokenizer) {
    std::vector<AddedToken> out;
    auto list = member(tokenizer.root, "added_tokens");
    if (!list) return out;
    simdjson::dom::array a;
    if (list->get(a)) fail(tokenizer.path, "added_tokens is not a list");
    for (const auto item : a) {
        const auto id = int_member(item, "id");
        const auto content = string_member(item, "content");
        if (!id || !content) fail(tokenizer.path, "an added_tokens entry lacks an integer id or a content string");
        out.push_back({*id, std::string(*content), bool_member(item, "special").value_or(false)});
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Special tokens, add_*_token flags and chat templates (what gguf-py's SpecialVocab reads)

struct SpecialKind {
    std::string_view name;     // bos, eos, ... as in "<name>_token" and "<name>_token_id"
    std::string_view id_key;   // the GGUF key of its id ("" : llama.cpp writes none)
    std::string_view add_key;  // the GGUF key of add_<name>_token ("" : none)
};
constexpr SpecialKind kKinds[] = {
    {"bos", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"},
    {"eos", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_eos_token"},
    {"unk", "tokenizer.ggml.unknown_token_id", ""},
    {"sep", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.add_sep_token"},
    {"pad", "tokenizer.ggml.padding_token_id", ""},
    {"cls", "", ""},
    {"mask", "tokenizer.ggml.mask_token_id", ""},
    {"eot", "tokenizer.ggml.eot_token_id", ""},
    {"eom", "tokenizer.ggml.eom_token_id", ""},
};
const SpecialKind& kind(std::string_view name) {
    for (const SpecialKind& k : kKinds)
        if (k.name == name) return k;
    throw std::logic_error("unknown special token kind");
}

// A tokenizer_config.json entry "<kind>_token": a string, an object with "content", or
// something else (compared equal to nothing, as Python compares a dict with a string).
struct Entry {
    bool truth = false;  // Python's truth of the value: present, and not an empty string or object
    bool is_string = false;
    std::string text;                    // a string's text
    std::optional<std::string> content;  // an object's "content" string
    bool truthy() const { return truth; }
    bool operator==(const Entry& o) const { return is_string && o.is_string && text == o.text; }
    std::optional<std::string> token_text() const { return is_string ? std::optional(text) : content; }
    static Entry string(std::string_view s) { return {!s.empty(), true, std::string(s), std::nullopt}; }
};
Entry entry_of(simdjson::dom::element e) {
    std::string_view s;
    if (!e.get(s)) return Entry::string(s);
    Entry x{is_truthy(e), false, {}, std::nullopt};
    if (auto c = string_member(e, "content")) x.content = std::string(*c);
    return x;
}
Entry special_of_template(simdjson::dom::element item) {  // {"SpecialToken": {"id": ...}}
    if (auto st = member(item, "SpecialToken"))
        if (auto id = string_member(*st, "id")) return Entry::string(*id);
    return {};
}

struct SpecialVocab {
    std::vector<std::pair<std::string, uint32_t>> ids;  // kind, id: first set wins, in order set
    std::vector<std::pair<std::string, bool>> adds;     // kind, flag: the last value, in order first set
    std::vector<std::string> kinds = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
    std::optional<uint64_t> n_vocab;
    // Chat templates: the default and named ones.
    std::optional<std::string> chat_template;
    std::vector<std::pair<std::string, std::string>> named_templates;

    void set_add(const std::string& k, bool v) {
        for (auto& [name, value] : adds)
            if (name == k) return void(value = v);
        adds.emplace_back(k, v);
    }
    void set_id(const std::string& k, std::optional<int64_t> id, const fs::path& from) {
        if (!id) return;
        if (*id < 0) fail(from, "invalid id " + std::to_string(*id) + " for the " + k + " token");
        if (n_vocab && static_cast<uint64_t>(*id) >= *n_vocab) return;  // llama.cpp skips it with a warning
        for (const auto& [name, value] : ids)
            if (name == k) return;
        ids.emplace_back(k, static_cast<uint32_t>(*id));
    }
};

// tokenizer_config.json's values, with the changes SpecialVocab makes to its copy.
struct Config {
    const Json* json = nullptr;
    std::map<std::string, Entry> changed;
    bool truthy() const { return json && is_truthy(json->root); }
    Entry get(const std::string& key) const {
        if (auto it = changed.find(key); it != changed.end()) return it->second;
        if (!json) return {};
        auto v = member(json->root, key);
        return v ? entry_of(*v) : Entry{};
    }
    void set(const std::string& key, const Entry& e) {
        if (truthy()) changed[key] = e;
    }
};

void read_template_processing(SpecialVocab& sv, Config& tc, simdjson::dom::element processor, Entry& bos, Entry& eos, Entry& sep, const Entry& cls);

void read_post_processor(SpecialVocab& sv, Config& tc, const Json& tokenizer) {
    Entry bos = tc.get("bos_token"), cls = tc.get("cls_token"), eos = tc.get("eos_token"), sep = tc.get("sep_token");
    if (!bos.truthy() && cls.truthy() && tc.truthy()) tc.set("bos_token", bos = cls);
    if (!eos.truthy() && sep.truthy() && tc.truthy()) tc.set("eos_token", eos = sep);
    auto post = member(tokenizer.root, "post_processor");
    if (!post || !is_truthy(*post)) return;
    std::vector<simdjson::dom::element> processors;
    simdjson::dom::array list;
    if (auto p = member(*post, "processors"); p && !p->get(list)) {
        for (const auto e : list) processors.push_back(e);
    } else {
        processors.push_back(*post);
    }
    for (const auto processor : processors) {
        const auto type = string_member(processor, "type").value_or("");
        if (type == "RobertaProcessing") {
            for (const char* k : {"bos", "eos", "sep"}) sv.set_add(k, true);
            auto first_of = [&](const char* key, const Entry& fallback) {
                simdjson::dom::array pair;
                std::string_view s;
                if (auto v = member(processor, key); v && !v->get(pair) && pair.size() > 0 && !pair.at(0).get(s)) return Entry::string(s);
                return fallback;
            };
            if (!cls.truthy() && tc.truthy()) tc.set("cls_token", cls = first_of("cls", bos));
            if (!sep.truthy() && tc.truthy()) tc.set("sep_token", sep = first_of("sep", eos));
        } else if (type == "TemplateProcessing") {
            read_template_processing(sv, tc, processor, bos, eos, sep, cls);
        }
    }
}

std::vector<simdjson::dom::element> elements(std::optional<simdjson::dom::element> e) {
    std::vector<simdjson::dom::element> out;
    simdjson::dom::array a;
    if (e && !e->get(a))
        for (const auto x : a) out.push_back(x);
    return out;
}

// The crude reading of a TemplateProcessing llama.cpp does: which special tokens wrap the
// single sequence, and which stand between A and B in the pair.
void read_template_processing(SpecialVocab& sv, Config& tc, simdjson::dom::element processor, Entry& bos, Entry& eos, Entry& sep, const Entry& cls) {
    const auto single = elements(member(processor, "single"));
    auto pair = elements(member(processor, "pair"));
    Entry first, last;
    if (single.size() > 1) {
        first = special_of_template(single.front());
        if (first.truthy()) {
            if (!tc.truthy()) bos = first;
            sv.set_add("bos", first == bos || first == cls);
        }
        last = special_of_template(single.back());
        if (last.truthy()) {
            if (!tc.truthy()) {
                eos = last;
            } else if (!(last == eos)) {
                for (const char* extra : {"eot", "eom"}) {
                    if (std::find(sv.kinds.begin(), sv.kinds.end(), extra) != sv.kinds.end()) continue;
                    sv.kinds.emplace_back(extra);
                    tc.set(std::string(extra) + "_token", eos);
                    break;
                }
                tc.set("eos_token", eos = last);
            }
            sv.set_add("eos", last == eos);
        }
    }
    if (pair.empty()) return;
    const size_t start = first.truthy() && special_of_template(pair.front()) == first ? 1 : 0;
    size_t stop = pair.size();
    if (last.truthy() && special_of_template(pair.back()) == last) --stop;
    if (start >= stop) return;
    pair = std::vector(pair.begin() + static_cast<std::ptrdiff_t>(start), pair.begin() + static_cast<std::ptrdiff_t>(stop));
    auto sequence_id = [](simdjson::dom::element e) { return member(e, "Sequence") ? string_member(*member(e, "Sequence"), "id") : std::nullopt; };
    if (sequence_id(pair.front()) != "A" || sequence_id(pair.back()) != "B" || pair.size() < 3) return;
    const std::vector middle(pair.begin() + 1, pair.end() - 1);
    bool add_sep = false;
    const Entry m0 = special_of_template(middle[0]);
    if (m0.truthy() && (m0 == sep || m0 == eos) && !last.truthy()) add_sep = true;
    if (middle.size() == 2) {
        const Entry m1 = special_of_template(middle[1]);
        if (m1.truthy() && (m1 == sep || m1 == eos)) add_sep = true;
    }
    sv.set_add("sep", add_sep);
    if (add_sep && !sep.truthy() && tc.truthy()) tc.set("sep_token", eos);
}

void read_chat_templates(SpecialVocab& sv, const Config& tc, const fs::path& folder) {
    std::optional<simdjson::dom::element> value = member(tc.json->root, "chat_template");
    std::unique_ptr<Json> alt_json;
    std::optional<std::string> alt_text;
    simdjson::dom::object root;
    const bool has_key = !tc.json->root.get(root) && !root.at_key("chat_template").error();
    if (!has_key) {
        if (fs::is_regular_file(folder / "chat_template.jinja")) {
            alt_text = read_file(folder / "chat_template.jinja");
        } else if ((alt_json = load_json(folder / "chat_template.json"))) {
            value = member(alt_json->root, "chat_template");
        }
    }
    if (alt_text) return void(sv.chat_template = alt_text);
    if (!value) return;
    std::string_view text;
    if (!value->get(text)) return void(sv.chat_template = std::string(text));
    simdjson::dom::array list;
    if (value->get(list)) return;  // llama.cpp ignores it with a warning
    for (const auto choice : list) {
        std::string name(string_member(choice, "name").value_or(""));
        const auto tmpl = string_member(choice, "template");
        for (char& c : name)
            if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
        if (name.empty() || !tmpl) continue;
        if (name == "default") sv.chat_template = std::string(*tmpl);
        else sv.named_templates.emplace_back(name, std::string(*tmpl));
    }
}

SpecialVocab read_special_vocab(const fs::path& folder, const Json* tokenizer, std::optional<uint64_t> n_vocab) {
    SpecialVocab sv;
    sv.n_vocab = n_vocab;
    const std::vector<AddedToken> added = tokenizer ? read_added_tokens(*tokenizer) : std::vector<AddedToken>{};
    const auto config_json = load_json(folder / "tokenizer_config.json");
    Config tc{config_json.get(), {}};
    if (tokenizer) read_post_processor(sv, tc, *tokenizer);
    if (tc.truthy()) {
        read_chat_templates(sv, tc, folder);
        for (const std::string& k : sv.kinds) {
            if (auto flag = bool_member(tc.json->root, "add_" + k + "_token")) sv.set_add(k, *flag);
            const auto content = tc.get(k + "_token").token_text();
            if (!content) continue;
            const auto hit = std::find_if(added.begin(), added.end(), [&](const AddedToken& a) { return a.content == *content; });
            if (hit != added.end()) sv.set_id(k, hit->id, tc.json->path);
        }
    }
    if (const auto config = load_json(folder / "config.json")) {
        for (const std::string& k : sv.kinds) {
            auto id = int_member(config->root, k + "_token_id");
            if (!member(config->root, k + "_token_id"))
                if (auto text = member(config->root, "text_config")) id = int_member(*text, k + "_token_id");
            sv.set_id(k, id, config->path);
        }
    }
    return sv;
}

void append_special_keys(TokenizerKeys& out, const SpecialVocab& sv) {
    for (const auto& [k, id] : sv.ids)
        if (const auto& key = kind(k).id_key; !key.empty()) out.keys.emplace_back(std::string(key), gguf::OwnedValue::u32(id));
    for (const auto& [k, flag] : sv.adds)
        if (const auto& key = kind(k).add_key; !key.empty()) out.keys.emplace_back(std::string(key), gguf::OwnedValue::boolean(flag));
    if (!sv.named_templates.empty()) {
        std::vector<std::string> names;
        for (const auto& [name, text] : sv.named_templates) {
            out.keys.emplace_back("tokenizer.chat_template." + name, gguf::OwnedValue::string(text));
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
        out.keys.emplace_back("tokenizer.chat_templates", gguf::OwnedValue::strings(names));
    }
    if (sv.chat_template) out.keys.emplace_back("tokenizer.chat_template", gguf::OwnedValue::string(*sv.chat_template));
}

// config.json's vocab_size, when the folder has one.
std::optional<uint64_t> config_vocab_size(const fs::path& folder) {
    const auto config = load_json(folder / "config.json");
    if (!config) return std::nullopt;
    auto n = int_member(config->root, "vocab_size");
    if (!n) return std::nullopt;
    if (*n <= 0) fail(config->path, "vocab_size " + std::to_string(*n) + " is not positive");
    return static_cast<uint64_t>(*n);
}

// ---------------------------------------------------------------------------------------
// Byte-level BPE: the pre-tokenizer

// (ByteLevel with use_regex applies GPT-2's own expression: its step reads "ByteLevel regex".)
constexpr std::string_view kLlama3Regex = R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kLlama3RegexSpelled =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2Regex = R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2RegexSpelled =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// The splitting steps of a pre_tokenizer, each as "Split <regex>", "Digits individual",
// "ByteLevel regex", or the type and settings of a step this code does not map.
std::vector<std::string> pre_tokenizer_steps(simdjson::dom::element pre) {
    std::vector<std::string> steps;
    const std::string type(string_member(pre, "type").value_or("(no type)"));
    if (type == "Sequence") {
        for (const auto e : elements(member(pre, "pretokenizers"))) {
            const auto inner = pre_tokenizer_steps(e);
            steps.insert(steps.end(), inner.begin(), inner.end());
        }
    } else if (type == "ByteLevel") {
        if (bool_member(pre, "use_regex").value_or(true)) steps.emplace_back("ByteLevel regex");
    } else if (type == "Split") {
        const auto pattern = member(pre, "pattern");
        const auto regex = pattern ? string_member(*pattern, "Regex") : std::nullopt;
        const auto behavior = string_member(pre, "behavior").value_or("");
        const bool invert = bool_member(pre, "invert").value_or(false);
        if (regex && behavior == "Isolated" && !invert) steps.push_back("Split " + std::string(*regex));
        else steps.push_back("Split (" + std::string(behavior) + (invert ? ", inverted" : "") + ") " + simdjson::to_string(pre));
    } else if (type == "Digits") {
        steps.emplace_back(bool_member(pre, "individual_digits").value_or(false) ? "Digits individual" : "Digits grouped");
    } else {
        steps.push_back(type + " " + simdjson::to_string(pre));
    }
    return steps;
}

struct KnownPreTokenizer {
    std::string_view name;                // tokenizer.ggml.pre
    std::vector<std::string> steps;       // as pre_tokenizer_steps writes them
    std::optional<bool> ignore_merges;    // model.ignore_merges; unset: either
};

std::string split(std::string_view regex) { return "Split " + std::string(regex); }

const std::vector<KnownPreTokenizer>& known_pre_tokenizers() {
    static const std::vector<KnownPreTokenizer> table = {
        {"gpt-2", {"ByteLevel regex"}, std::nullopt},
        {"llama-bpe", {split(kLlama3Regex)}, true},
        {"llama-bpe", {split(kLlama3RegexSpelled)}, true},
        // Llama 3's expression without ignore_merges (llama.cpp's dbrx and smaug-bpe, which
        // tokenize alike).
        {"smaug-bpe", {split(kLlama3Regex)}, false},
        {"smaug-bpe", {split(kLlama3RegexSpelled)}, false},
        {"qwen2", {split(kQwen2Regex)}, std::nullopt},
        {"qwen2", {split(kQwen2RegexSpelled)}, std::nullopt},
        // StarCoder's digits one by one, then GPT-2's expression (also refact, smollm, ...).
        {"starcoder", {"Digits individual", "ByteLevel regex"}, std::nullopt},
    };
    return table;
}

std::string recognise_pre_tokenizer(const Json& tokenizer) {
    const auto pre = member(tokenizer.root, "pre_tokenizer");
    if (!pre) fail(tokenizer.path, "no pre_tokenizer: this code names a byte-level BPE tokenizer's pre-tokenizer from its definition");
    const auto steps = pre_tokenizer_steps(*pre);
    const auto model = member(tokenizer.root, "model");
    const bool ignore_merges = model ? bool_member(*model, "ignore_merges").value_or(false) : false;
    for (const KnownPreTokenizer& k : known_pre_tokenizers())
        if (k.steps == steps && (!k.ignore_merges || *k.ignore_merges == ignore_merges)) return std::string(k.name);
    std::string list;
    for (const auto& s : steps) list += "\n  " + s;
    fail(tokenizer.path, "pre_tokenizer not recognised (ignore_merges " + std::string(ignore_merges ? "true" : "false") +
                             "; known: gpt-2, llama-bpe, smaug-bpe, qwen2, starcoder); its steps:" + (list.empty() ? " none" : list));
}

// ---------------------------------------------------------------------------------------
// Byte-level BPE: vocabulary and merges

// model.merges as "a b" strings. Parts of [a, b] pairs may hold spaces: those are written
// as U+0120 ("Ġ"), which is how the byte alphabet spells a space.
std::vector<std::string> read_merges(const Json& tokenizer, simdjson::dom::element model) {
    std::vector<std::string> merges;
    const auto list = elements(member(model, "merges"));
    merges.reserve(list.size());
    auto escape_spaces = [](std::string_view part) {
        std::string s;
        for (const char c : part) s += c == ' ' ? std::string_view("\xC4\xA0") : std::string_view(&c, 1);
        return s;
    };
    for (size_t i = 0; i < list.size(); ++i) {
        std::string_view text;
        simdjson::dom::array pair;
        std::string_view a, b;
        if (!list[i].get(text)) {
            merges.emplace_back(text);
        } else if (!list[i].get(pair) && pair.size() == 2 && !pair.at(0).get(a) && !pair.at(1).get(b)) {
            merges.push_back(escape_spaces(a) + " " + escape_spaces(b));
        } else {
            fail(tokenizer.path, "model.merges[" + std::to_string(i) + "] is neither a string nor a pair of strings");
        }
    }
    return merges;
}

TokenizerKeys convert_bpe(const fs::path& folder, const Json& tokenizer, const TokenizerOptions& options) {
    const auto model = member(tokenizer.root, "model");
    if (!model) fail(tokenizer.path, "no model");
    const auto type = string_member(*model, "type").value_or("(none)");
    if (type != "BPE") fail(tokenizer.path, "model type " + std::string(type) + ": only byte-level BPE (or a tokenizer.model) is converted");
    if (bool_member(*model, "byte_fallback").value_or(false))
        fail(tokenizer.path, "a BPE with byte_fallback (SentencePiece-style): convert it from its tokenizer.model");
    simdjson::dom::object vocab;
    if (auto v = member(*model, "vocab"); !v || v->get(vocab)) fail(tokenizer.path, "model.vocab is not an object");

    TokenizerKeys out;
    out.model = "gpt2";
    out.pre = recognise_pre_tokenizer(tokenizer);

    // Id -> string: the model's vocabulary, then the added tokens.
    std::unordered_map<int64_t, std::string> by_id;
    by_id.reserve(vocab.size() + 1024);
    std::set<std::string> contents;  // distinct strings (transformers' len(tokenizer.vocab))
    for (const auto field : vocab) {
        int64_t id;
        if (field.value.get(id) || id < 0) fail(tokenizer.path, "model.vocab[\"" + std::string(field.key) + "\"] is not a non-negative integer id");
        by_id[id] = std::string(field.key);
        contents.emplace(field.key);
    }
    const std::vector<AddedToken> added = read_added_tokens(tokenizer);
    std::map<std::string, bool, std::less<>> added_special;  // content -> special
    for (const AddedToken& a : added) {
        if (a.id < 0) fail(tokenizer.path, "added token '" + a.content + "' has a negative id");
        by_id[a.id] = a.content;
        contents.insert(a.content);
        added_special.emplace(a.content, a.special);
    }
    const uint64_t n = options.vocab_size ? *options.vocab_size : config_vocab_size(folder).value_or(contents.size());
    const auto highest = std::max_element(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (highest != by_id.end() && static_cast<uint64_t>(highest->first) >= n)
        fail(tokenizer.path, "token '" + highest->second + "' has id " + std::to_string(highest->first) + ", outside the vocabulary size " + std::to_string(n));

    std::vector<std::string> tokens(n);
    std::vector<int32_t> types(n, kNormal);
    for (uint64_t i = 0; i < n; ++i) {
        const auto it = by_id.find(static_cast<int64_t>(i));
        if (it == by_id.end()) {
            tokens[i] = "[PAD" + std::to_string(i) + "]";
            types[i] = kUnused;
            continue;
        }
        tokens[i] = it->second;
        const auto a = added_special.find(it->second);
        if (a == added_special.end()) continue;
        if (a->second || looks_special(tokens[i])) {
            types[i] = kControl;
        } else {
            tokens[i] = spaces_for_metaspace(tokens[i]);
            types[i] = kUserDefined;
        }
    }
    out.vocab_size = n;
    out.keys.emplace_back("tokenizer.ggml.model", gguf::OwnedValue::string(out.model));
    out.keys.emplace_back("tokenizer.ggml.pre", gguf::OwnedValue::string(out.pre));
    out.keys.emplace_back("tokenizer.ggml.tokens", gguf::OwnedValue::strings(tokens));
    out.keys.emplace_back("tokenizer.ggml.token_type", gguf::OwnedValue::numbers(gguf::ValueType::I32, types, gguf::OwnedValue::i32));
    const auto merges = read_merges(tokenizer, *model);
    if (!merges.empty()) out.keys.emplace_back("tokenizer.ggml.merges", gguf::OwnedValue::strings(merges));
    append_special_keys(out, read_special_vocab(folder, &tokenizer, n));
    return out;
}

// ---------------------------------------------------------------------------------------
// SentencePiece

// Protocol buffers' wire format: each field is a varint key (field number << 3 | wire type)
// and a value: 0 varint, 1 eight bytes, 2 a varint length and that many bytes, 5 four
// bytes (3 and 4, groups, are long deprecated and refused).
class ProtoReader {
public:
    ProtoReader(std::string_view bytes, size_t base, const std::string& name) : bytes_(bytes), base_(base), name_(name) {}
    bool done() const { return at_ == bytes_.size(); }
    size_t offset() const { return base_ + at_; }
    [[noreturn]] void fail_here(const std::string& what) const {
        throw std::runtime_error(name_ + ": offset " + std::to_string(offset()) + ": " + what);
    }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (at_ >= bytes_.size()) fail_here("a varint runs past the end");
            const auto b = static_cast<uint8_t>(bytes_[at_++]);
            v |= uint64_t{b & 0x7Fu} << shift;
            if (!(b & 0x80)) return v;
        }
        fail_here("a varint longer than 10 bytes");
    }
    // The next field's number and wire type.
    std::pair<uint64_t, uint32_t> key() {
        const uint64_t k = varint();
        return {k >> 3, static_cast<uint32_t>(k & 7)};
    }
    std::string_view bytes_field() {
        const uint64_t n = varint();
        if (n > bytes_.size() - at_) fail_here("a length of " + std::to_string(n) + " runs past the end");
        const auto s = bytes_.substr(at_, static_cast<size_t>(n));
        at_ += static_cast<size_t>(n);
        return s;
    }
    uint32_t fixed32() {
        if (bytes_.size() - at_ < 4) fail_here("a 4-byte value runs past the end");
        uint32_t v = 0;
        for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(bytes_[at_ + static_cast<size_t>(i)]);
        at_ += 4;
        return v;
    }
    void skip(uint32_t wire) {
        switch (wire) {
        case 0: varint(); return;
        case 1:
            if (bytes_.size() - at_ < 8) fail_here("an 8-byte value runs past the end");
            at_ += 8;
            return;
        case 2: bytes_field(); return;
        case 5: fixed32(); return;
        default: fail_here("wire type " + std::to_string(wire) + " (groups or invalid)");
        }
    }
    size_t position() const { return at_; }

private:
    std::string_view bytes_;
    size_t base_;
    size_t at_ = 0;
    const std::string& name_;
};

// sentencepiece_model.proto's SentencePiece: 1 piece (string), 2 score (float), 3 type (enum).
SentencePiece read_piece(std::string_view bytes, size_t base, const std::string& name) {
    ProtoReader r(bytes, base, name);
    SentencePiece p;
    while (!r.done()) {
        const auto [field, wire] = r.key();
        if (field == 1 && wire == 2) {
            p.piece = std::string(r.bytes_field());
        } else if (field == 2 && wire == 5) {
            const uint32_t bits = r.fixed32();
            std::memcpy(&p.score, &bits, 4);
        } else if (field == 3 && wire == 0) {
            const uint64_t t = r.varint();
            if (t < 1 || t > 6) r.fail_here("piece type " + std::to_string(t) + " (known: 1 to 6)");
            p.type = static_cast<SentencePiece::Type>(t);
        } else {
            r.skip(wire);
        }
    }
    return p;
}

int32_t gguf_type(SentencePiece::Type t) {  // llama.cpp's order of tests: unknown, control, unused, byte
    switch (t) {
    case SentencePiece::Type::Unknown: return kUnknown;
    case SentencePiece::Type::Control: return kControl;
    case SentencePiece::Type::Unused: return kUnused;
    case SentencePiece::Type::Byte: return kByte;
    default: return kNormal;  // user-defined pieces too
    }
}

TokenizerKeys convert_sentencepiece(const fs::path& folder, const TokenizerOptions& options) {
    const fs::path model_path = folder / "tokenizer.model";
    const std::vector<SentencePiece> pieces = read_sentencepiece_model(read_file(model_path), model_path.string());
    if (pieces.empty()) fail(model_path, "no pieces");
    const uint64_t n = options.vocab_size ? *options.vocab_size : config_vocab_size(folder).value_or(pieces.size());
    std::vector<std::string> tokens(n);
    std::vector<float> scores(n, -10000.0f);
    std::vector<int32_t> types(n, kUnused);
    for (uint64_t i = 0; i < n; ++i) {
        if (i < pieces.size()) {
            tokens[i] = pieces[i].piece;
            scores[i] = pieces[i].score;
            types[i] = gguf_type(pieces[i].type);
        } else {
            tokens[i] = "[PAD" + std::to_string(i) + "]";
        }
    }
    if (const auto added = load_json(folder / "added_tokens.json")) {
        simdjson::dom::object o;
        if (added->root.get(o)) fail(added->path, "not an object of token -> id");
        for (const auto field : o) {
            int64_t id;
            if (field.value.get(id) || id < 0) fail(added->path, "\"" + std::string(field.key) + "\" has no non-negative integer id");
            if (static_cast<uint64_t>(id) >= n) continue;  // llama.cpp ignores it with a warning
            tokens[id] = std::string(field.key);
            scores[id] = -1000.0f;
            types[id] = kUserDefined;
        }
    }
    if (const auto config = load_json(folder / "tokenizer_config.json")) {
        simdjson::dom::object decoder;
        if (auto d = member(config->root, "added_tokens_decoder"); d && !d->get(decoder)) {
            for (const auto field : decoder) {
                uint64_t id = 0;
                const std::string key(field.key);
                const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
                if (ec != std::errc() || end != key.data() + key.size()) fail(config->path, "added_tokens_decoder key '" + key + "' is not an id");
                const auto content = string_member(field.value, "content");
                if (!content) fail(config->path, "added_tokens_decoder[" + key + "] has no content string");
                if (id >= n) continue;
                const bool special = bool_member(field.value, "special").value_or(false);
                if (special || looks_special(*content)) {
                    tokens[id] = std::string(*content);
                    types[id] = kControl;
                } else {
                    tokens[id] = spaces_for_metaspace(*content);
                    types[id] = kUserDefined;
                }
                scores[id] = -1000.0f;
            }
        }
    }
    TokenizerKeys out;
    out.model = "llama";
    out.pre = "default";
    out.vocab_size = n;
    out.keys.emplace_back("tokenizer.ggml.model", gguf::OwnedValue::string(out.model));
    out.keys.emplace_back("tokenizer.ggml.pre", gguf::OwnedValue::string(out.pre));
    out.keys.emplace_back("tokenizer.ggml.tokens", gguf::OwnedValue::strings(tokens));
    out.keys.emplace_back("tokenizer.ggml.scores", gguf::OwnedValue::numbers(gguf::ValueType::F32, scores, gguf::OwnedValue::f32));
    out.keys.emplace_back("tokenizer.ggml.token_type", gguf::OwnedValue::numbers(gguf::ValueType::I32, types, gguf::OwnedValue::i32));
    const auto tokenizer = load_json(folder / "tokenizer.json");
    append_special_keys(out, read_special_vocab(folder, tokenizer.get(), n));
    return out;
}

}  // namespace

const gguf::OwnedValue* TokenizerKeys::find(std::string_view key) const {
    for (const auto& [k, v] : keys)
        if (k == key) return &v;
    return nullptr;
}

std::vector<SentencePiece> read_sentencepiece_model(std::string_view bytes, const std::string& name) {
    ProtoReader r(bytes, 0, name);
    std::vector<SentencePiece> pieces;
    while (!r.done()) {
        const auto [field, wire] = r.key();
        if (field == 1 && wire == 2) {
            const std::string_view body = r.bytes_field();
            pieces.push_back(read_piece(body, r.position() - body.size(), name));
        } else {
            r.skip(wire);
        }
    }
    return pieces;
}

TokenizerKeys tokenizer_keys(const fs::path& folder, const TokenizerOptions& options) {
    if (!fs::is_directory(folder)) fail(folder, "not a folder");
    if (fs::is_regular_file(folder / "tokenizer.model")) return convert_sentencepiece(folder, options);
    if (const auto tokenizer = load_json(folder / "tokenizer.json")) return convert_bpe(folder, *tokenizer, options);
    fail(folder, "no tokenizer.model or tokenizer.json");
}

}  // namespace convert
