#include "regex.h"

#include <stdexcept>
#include <string>

namespace infer::regex {

using unicode::CategoryMask;

namespace {

// The parsed form of a pattern; compiled into the instruction list afterwards.
struct Node {
    enum Kind { Empty, Char, ClassRef, Any, Concat, Alt, Repeat, Look, NegLook, Bol, Eol } kind = Empty;
    uint32_t ch = 0;
    bool icase = false;
    uint32_t cls = 0;
    int min = 0, max = -1;  // Repeat: max -1 is unbounded
    bool greedy = true;
    std::vector<Node> kids;
};

Node make_node(Node::Kind kind) {
    Node n;
    n.kind = kind;
    return n;
}

uint32_t ascii_upper(uint32_t c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }

struct NamedCategory {
    std::string_view name;
    CategoryMask mask;
};

CategoryMask category_mask(std::string_view name) {
    using namespace unicode;
    static constexpr NamedCategory kNames[] = {
        {"L", kLetter}, {"Lu", bit(Lu)}, {"Ll", bit(Ll)}, {"Lt", bit(Lt)}, {"Lm", bit(Lm)}, {"Lo", bit(Lo)},
        {"M", kMark}, {"Mn", bit(Mn)}, {"Mc", bit(Mc)}, {"Me", bit(Me)},
        {"N", kNumber}, {"Nd", bit(Nd)}, {"Nl", bit(Nl)}, {"No", bit(No)},
        {"P", kPunctuation}, {"Pc", bit(Pc)}, {"Pd", bit(Pd)}, {"Ps", bit(Ps)}, {"Pe", bit(Pe)}, {"Pi", bit(Pi)},
        {"Pf", bit(Pf)}, {"Po", bit(Po)},
        {"S", kSymbol}, {"Sm", bit(Sm)}, {"Sc", bit(Sc)}, {"Sk", bit(Sk)}, {"So", bit(So)},
        {"Z", kSeparator}, {"Zs", bit(Zs)}, {"Zl", bit(Zl)}, {"Zp", bit(Zp)},
        {"C", kOther}, {"Cc", bit(Cc)}, {"Cf", bit(Cf)}, {"Cs", bit(Cs)}, {"Co", bit(Co)}, {"Cn", bit(Cn)},
    };
    for (const auto& n : kNames)
        if (n.name == name) return n.mask;
    return 0;
}

}  // namespace

bool Regex::Class::item_matches(uint32_t c) const {
    for (const Item& it : items) {
        switch (it.kind) {
        case Item::Range:
            if (c >= it.lo && c <= it.hi) return true;
            break;
        case Item::Categories:
            if (unicode::in(c, it.mask)) return true;
            break;
        case Item::NotCategories:
            if (!unicode::in(c, it.mask)) return true;
            break;
        case Item::Space:
            if (unicode::is_whitespace(c)) return true;
            break;
        case Item::NotSpace:
            if (!unicode::is_whitespace(c)) return true;
            break;
        }
    }
    return false;
}

bool Regex::Class::slow_matches(uint32_t c) const {
    bool hit = item_matches(c);
    if (!hit && icase) {
        const uint32_t lower = unicode::to_lower(c);
        hit = lower != c && item_matches(lower);
    }
    return hit != negate;
}

void Regex::Class::finish() {
    ascii[0] = ascii[1] = 0;
    for (uint32_t c = 0; c < 128; ++c) {
        bool hit = item_matches(c);
        if (!hit && icase) hit = item_matches(unicode::to_lower(c)) || item_matches(ascii_upper(c));
        if (hit != negate) ascii[c >> 6] |= uint64_t{1} << (c & 63);
    }
}

// Recursive-descent parser and code generator.
class Compiler {
public:
    Compiler(std::string_view pattern, Regex& out) : source_(pattern), text_(unicode::decode(pattern)), out_(out) {}

    void compile() {
        Node root = alternation(false);
        if (pos_ < text_.size()) fail("unbalanced ')'");
        emit(root);
        out_.program_.push_back({Regex::Op::Match});
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::invalid_argument("regular expression '" + std::string(source_) + "': " + what + " at code point " +
                                    std::to_string(pos_));
    }
    bool more() const { return pos_ < text_.size(); }
    uint32_t peek() const { return text_[pos_]; }
    bool accept(uint32_t c) {
        if (more() && peek() == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    uint32_t next() {
        if (!more()) fail("unexpected end");
        return text_[pos_++];
    }

    Node alternation(bool icase) {
        Node alt = make_node(Node::Alt);
        alt.kids.push_back(sequence(icase));
        while (accept('|')) alt.kids.push_back(sequence(icase));
        return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
    }

    Node sequence(bool icase) {
        Node seq = make_node(Node::Concat);
        while (more() && peek() != '|' && peek() != ')') {
            Node atom_node = atom(icase);
            seq.kids.push_back(quantified(std::move(atom_node)));
        }
        return seq;
    }

    int number() {
        if (!more() || peek() < '0' || peek() > '9') fail("expected a number");
        int n = 0;
        while (more() && peek() >= '0' && peek() <= '9') {
            n = n * 10 + static_cast<int>(next() - '0');
            if (n > 1000) fail("repetition count too large");
        }
        return n;
    }

    Node quantified(Node atom_node) {
        int min = 0, max = -1;
        if (accept('*')) {
        } else if (accept('+')) {
            min = 1;
        } else if (accept('?')) {
            max = 1;
        } else if (more() && peek() == '{') {
            ++pos_;
            min = max = number();
            if (accept(',')) max = (more() && peek() == '}') ? -1 : number();
            if (!accept('}')) fail("expected '}'");
            if (max != -1 && max < min) fail("bad repetition range");
        } else {
            return atom_node;
        }
        Node rep = make_node(Node::Repeat);
        rep.min = min;
        rep.max = max;
        rep.greedy = !accept('?');
        rep.kids.push_back(std::move(atom_node));
        return rep;
    }

    Node atom(bool icase) {
        const uint32_t c = next();
        switch (c) {
        case '(': return group(icase);
        case '[': return class_node(icase);
        case '.': return make_node(Node::Any);
        case '^': return make_node(Node::Bol);
        case '$': return make_node(Node::Eol);
        case '*': case '+': case '?': case '{': fail("nothing to repeat");
        case '\\': {
            Regex::Class cls;
            uint32_t literal = 0;
            if (escape(cls, literal)) return class_ref(std::move(cls), icase);
            return char_node(literal, icase);
        }
        default: return char_node(c, icase);
        }
    }

    Node group(bool icase) {
        Node::Kind kind = Node::Concat;
        bool inner_icase = icase;
        if (accept('?')) {
            if (accept(':')) {
            } else if (accept('=')) {
                kind = Node::Look;
            } else if (accept('!')) {
                kind = Node::NegLook;
            } else if (accept('i')) {
                if (!accept(':')) fail("only (?i:...) is supported among flag groups");
                inner_icase = true;
            } else {
                fail("unsupported group");
            }
        }
        Node inner = alternation(inner_icase);
        if (!accept(')')) fail("expected ')'");
        if (kind == Node::Concat) return inner;
        Node look = make_node(kind);
        look.kids.push_back(std::move(inner));
        return look;
    }

    Node char_node(uint32_t c, bool icase) {
        Node n = make_node(Node::Char);
        n.ch = c;
        n.icase = icase;
        return n;
    }

    Node class_ref(Regex::Class cls, bool icase) {
        cls.icase = icase;
        cls.finish();
        Node n = make_node(Node::ClassRef);
        n.cls = static_cast<uint32_t>(out_.classes_.size());
        out_.classes_.push_back(std::move(cls));
        return n;
    }

    uint32_t hex(int digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; ++i) {
            const uint32_t d = next();
            if (d >= '0' && d <= '9') v = v * 16 + (d - '0');
            else if (d >= 'a' && d <= 'f') v = v * 16 + (d - 'a' + 10);
            else if (d >= 'A' && d <= 'F') v = v * 16 + (d - 'A' + 10);
            else fail("bad hexadecimal digit");
        }
        return v;
    }

    // After a backslash: adds a class item to `cls` and returns true, or sets `literal`.
    bool escape(Regex::Class& cls, uint32_t& literal) {
        using Item = Regex::Item;
        const uint32_t c = next();
        switch (c) {
        case 's': cls.items.push_back({Item::Space}); return true;
        case 'S': cls.items.push_back({Item::NotSpace}); return true;
        case 'd': cls.items.push_back({Item::Range, '0', '9'}); return true;
        case 'D': cls.items.push_back({Item::Range, 0, '0' - 1}); cls.items.push_back({Item::Range, '9' + 1, 0x10FFFF}); return true;
        case 'w':
            for (auto [lo, hi] : {std::pair<uint32_t, uint32_t>{'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'_', '_'}})
                cls.items.push_back({Item::Range, lo, hi});
            return true;
        case 'p': case 'P': {
            if (!accept('{')) fail("expected '{' after \\p");
            std::string name;
            while (more() && peek() != '}') name += static_cast<char>(next());
            if (!accept('}')) fail("expected '}'");
            const CategoryMask mask = category_mask(name);
            if (mask == 0) fail("unknown category '" + name + "'");
            cls.items.push_back({c == 'p' ? Item::Categories : Item::NotCategories, 0, 0, mask});
            return true;
        }
        case 'r': literal = '\r'; return false;
        case 'n': literal = '\n'; return false;
        case 't': literal = '\t'; return false;
        case 'f': literal = '\f'; return false;
        case 'v': literal = '\v'; return false;
        case '0': literal = 0; return false;
        case 'x': literal = hex(2); return false;
        case 'u': literal = hex(4); return false;
        default:
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) fail("unsupported escape");
            literal = c;
            return false;
        }
    }

    Node class_node(bool icase) {
        using Item = Regex::Item;
        Regex::Class cls;
        cls.negate = accept('^');
        bool first = true;
        while (true) {
            if (!more()) fail("unterminated class");
            if (peek() == ']' && !first) {
                ++pos_;
                break;
            }
            first = false;
            uint32_t lo = next();
            if (lo == '\\') {
                uint32_t literal = 0;
                if (escape(cls, literal)) continue;
                lo = literal;
            }
            uint32_t hi = lo;
            if (more() && peek() == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
                ++pos_;
                hi = next();
                if (hi == '\\') {
                    Regex::Class ignored;
                    if (escape(ignored, hi)) fail("a class cannot end a range");
                }
                if (hi < lo) fail("bad range in class");
            }
            cls.items.push_back({Item::Range, lo, hi});
        }
        return class_ref(std::move(cls), icase);
    }

    // Code generation.
    uint32_t here() const { return static_cast<uint32_t>(out_.program_.size()); }
    uint32_t push(Regex::Op op, uint32_t a = 0, uint32_t b = 0) {
        out_.program_.push_back({op, a, b});
        return here() - 1;
    }

    void emit(const Node& n) {
        using Op = Regex::Op;
        switch (n.kind) {
        case Node::Empty: break;
        case Node::Char: {
            const uint32_t lower = unicode::to_lower(n.ch);
            const bool folds = n.icase && (lower != n.ch || ascii_upper(n.ch) != n.ch);
            push(folds ? Op::CharFold : Op::Char, folds ? lower : n.ch);
            break;
        }
        case Node::ClassRef: push(Op::Class, n.cls); break;
        case Node::Any: push(Op::Any); break;
        case Node::Bol: push(Op::Bol); break;
        case Node::Eol: push(Op::Eol); break;
        case Node::Concat:
            for (const Node& k : n.kids) emit(k);
            break;
        case Node::Alt: {
            std::vector<uint32_t> jumps;
            for (size_t i = 0; i < n.kids.size(); ++i) {
                if (i + 1 < n.kids.size()) {
                    const uint32_t split = push(Op::Split);
                    out_.program_[split].a = here();
                    emit(n.kids[i]);
                    jumps.push_back(push(Op::Jmp));
                    out_.program_[split].b = here();
                } else {
                    emit(n.kids[i]);
                }
            }
            for (uint32_t j : jumps) out_.program_[j].a = here();
            break;
        }
        case Node::Repeat: emit_repeat(n); break;
        case Node::Look:
        case Node::NegLook: {
            const uint32_t look = push(n.kind == Node::Look ? Op::Look : Op::NegLook);
            emit(n.kids[0]);
            push(Op::Match);
            out_.program_[look].a = here();
            break;
        }
        }
    }

    // A split that prefers `first` when greedy, the other way round when lazy.
    void set_split(uint32_t at, uint32_t body, uint32_t skip, bool greedy) {
        out_.program_[at].a = greedy ? body : skip;
        out_.program_[at].b = greedy ? skip : body;
    }

    void emit_repeat(const Node& n) {
        using Op = Regex::Op;
        const Node& body = n.kids[0];
        for (int i = 0; i < n.min; ++i) emit(body);
        if (n.max == -1) {
            const uint32_t loop = push(Op::Split);
            emit(body);
            push(Op::Jmp, loop);
            set_split(loop, loop + 1, here(), n.greedy);
            return;
        }
        std::vector<uint32_t> splits;
        for (int i = n.min; i < n.max; ++i) {
            splits.push_back(push(Op::Split));
            emit(body);
        }
        for (uint32_t s : splits) set_split(s, s + 1, here(), n.greedy);
    }

    std::string_view source_;
    std::vector<uint32_t> text_;
    size_t pos_ = 0;
    Regex& out_;
};

Regex::Regex(std::string_view pattern) { Compiler(pattern, *this).compile(); }

size_t Regex::match_at(std::span<const uint32_t> text, size_t pos) const { return run(text, 0, pos); }

// Backtracking over an explicit stack of (instruction, position) choices still to try;
// the first Match reached in priority order is the leftmost-first match.
size_t Regex::run(std::span<const uint32_t> text, uint32_t start_pc, size_t start_pos) const {
    struct Choice {
        uint32_t pc;
        size_t pos;
    };
    // One stack per thread: a lookahead runs above its caller's entries and leaves them as found.
    thread_local std::vector<Choice> stack;
    const size_t base = stack.size();
    stack.push_back({start_pc, start_pos});
    const size_t n = text.size();
    size_t result = npos;
    while (stack.size() > base && result == npos) {
        uint32_t pc = stack.back().pc;
        size_t pos = stack.back().pos;
        stack.pop_back();
        for (bool alive = true; alive;) {
            const Inst& in = program_[pc];
            switch (in.op) {
            case Op::Char:
                alive = pos < n && text[pos] == in.a;
                ++pos, ++pc;
                break;
            case Op::CharFold:
                alive = pos < n && unicode::to_lower(text[pos]) == in.a;
                ++pos, ++pc;
                break;
            case Op::Class:
                alive = pos < n && classes_[in.a].matches(text[pos]);
                ++pos, ++pc;
                break;
            case Op::Any:
                alive = pos < n && text[pos] != '\n' && text[pos] != '\r';
                ++pos, ++pc;
                break;
            case Op::Split:
                stack.push_back({in.b, pos});
                pc = in.a;
                break;
            case Op::Jmp: pc = in.a; break;
            case Op::Look:
            case Op::NegLook: {
                const bool found = run(text, pc + 1, pos) != npos;
                alive = found == (in.op == Op::Look);
                pc = in.a;
                break;
            }
            case Op::Bol:
                alive = pos == 0;
                ++pc;
                break;
            case Op::Eol:
                alive = pos == n;
                ++pc;
                break;
            case Op::Match:
                result = pos;
                alive = false;
                break;
            }
        }
    }
    stack.resize(base);
    return result;
}

void split(const Regex& re, std::span<const uint32_t> text, std::span<const size_t> lengths, std::vector<size_t>& out) {
    out.clear();
    size_t start = 0;
    for (const size_t len : lengths) {
        const auto piece = text.subspan(start, len);
        size_t done = 0;  // piece[0, done) is cut off already
        for (size_t p = 0; p < len;) {
            const size_t end = re.match_at(piece, p);
            if (end == Regex::npos) {
                ++p;
                continue;
            }
            if (end == p) {  // an empty match (a lookahead alone) only cuts
                if (p > done) out.push_back(p - done);
                done = p++;
                continue;
            }
            if (p > done) out.push_back(p - done);
            out.push_back(end - p);
            done = p = end;
        }
        if (len > done) out.push_back(len - done);
        start += len;
    }
}

}  // namespace infer::regex
