// SentencePiece (tokenizer.ggml.model "llama"): pieces merge by token score.
//
// The text's spaces become "▁" (and one goes in front when add_space_prefix and the text
// starts or follows a special token). Each UTF-8 character starts as a piece; repeatedly
// the neighbouring pair whose joined string is the highest-scoring token merges (on equal
// scores the leftmost pair). A final piece that is no token is written as its bytes'
// <0xXX> tokens, or the unknown token where the vocabulary lacks them.
#include <queue>

#include "unicode.h"
#include "vocab.h"

namespace infer {

namespace {

struct Piece {
    uint32_t start, length;  // bytes of the escaped text; length 0: merged into its left neighbour
    int32_t prev, next;      // neighbours, -1 at the ends
};

struct Pair {
    float score;
    int32_t left, right;
    uint32_t length;  // of the two together when the pair was found
    bool operator<(const Pair& o) const {  // priority_queue pops the largest
        return score < o.score || (score == o.score && left > o.left);
    }
};

}  // namespace

void encode_spm(const Tokenizer::Impl& v, std::string_view text, bool first, std::vector<TokenId>& out) {
    std::string s;
    s.reserve(text.size() + 3 * 8);
    auto put = [&](char c) {
        if (c == ' ') s += "\xE2\x96\x81";
        else s += c;
    };
    if (v.add_space_prefix && first) put(' ');
    for (const char c : text) put(c);

    std::vector<Piece> pieces;
    pieces.reserve(s.size());
    for (uint32_t at = 0; at < s.size();) {
        const uint32_t n = static_cast<uint32_t>(std::min<size_t>(unicode::sequence_length(static_cast<uint8_t>(s[at])), s.size() - at));
        const auto index = static_cast<int32_t>(pieces.size());
        pieces.push_back({at, n, index - 1, at + n < s.size() ? index + 1 : -1});
        at += n;
    }

    std::priority_queue<Pair> queue;
    auto consider = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const uint32_t length = pieces[left].length + pieces[right].length;
        if (length > v.max_token_bytes) return;  // no token is that long
        const auto id = v.find(std::string_view(s).substr(pieces[left].start, length));
        if (!id) return;
        queue.push({v.scores[*id], left, right, length});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(pieces.size()); ++i) consider(i - 1, i);

    while (!queue.empty()) {
        const Pair p = queue.top();
        queue.pop();
        Piece& left = pieces[p.left];
        Piece& right = pieces[p.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != p.length) continue;  // stale
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) pieces[right.next].prev = p.left;
        consider(left.prev, p.left);
        consider(p.left, left.next);
    }

    for (int32_t i = pieces.empty() ? -1 : 0; i >= 0; i = pieces[i].next) {
        const std::string_view piece = std::string_view(s).substr(pieces[i].start, pieces[i].length);
        if (const auto id = v.find(piece)) {
            out.push_back(*id);
            continue;
        }
        for (const char c : piece) {
            const TokenId byte = v.byte_tokens[static_cast<uint8_t>(c)];
            if (byte >= 0) out.push_back(byte);
            else if (const auto single = v.find(std::string_view(&c, 1))) out.push_back(*single);
            else if (v.unk) out.push_back(*v.unk);
        }
    }
}

}  // namespace infer
