#include "gguf/zst.h"

#include <fmt/format.h>
#include <zstd.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/mapping.h"
#include "gguf/writer.h"

namespace gguf::zst {

namespace {

constexpr uint32_t kZstdMagic = 0xFD2FB528;
constexpr uint32_t kSeekTableFrame = 0x184D2A5E;  // the skippable frame zstd's seekable format puts last
constexpr uint32_t kSeekableMagic = 0x8F92EAB1;
constexpr uint32_t kIndexFrame = 0x184D2A5C;      // ours: how each frame's bytes were grouped
constexpr char kIndexTag[4] = {'G', 'G', 'Z', 'I'};
constexpr uint32_t kIndexVersion = 1;
constexpr uint64_t kFooterBytes = 9;               // frame count, descriptor, magic
constexpr uint64_t kIndexEntryBytes = 5;           // transform (u8), transformed bytes (u32)

uint32_t load_u32(const uint8_t* p) { return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24; }
void put_u32(std::vector<uint8_t>& v, uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}

// The transforms a frame's first bytes may go through before compression, by code (the
// index's byte): 1 none; 2 and 4: bytes grouped by position within 2- or 4-byte elements
// (byte k of element j goes to k * n + j, n elements); 0x12 and 0x14: BF16 and F32 values
// split so that the exponent is a byte of its own (its few values compress well) and the
// sign joins the mantissa: BF16 as [exponent][sign, 7 mantissa bits]; F32 as [exponent]
// [sign, top 7 mantissa bits][middle 8][low 8].
constexpr uint8_t kNone = 1, kGroup2 = 2, kGroup4 = 4, kBf16Split = 0x12, kF32Split = 0x14;
constexpr unsigned width_of(uint8_t code) { return code & 0x0f; }
constexpr bool known_transform(uint8_t code) { return code == kNone || code == kGroup2 || code == kGroup4 || code == kBf16Split || code == kF32Split; }

void load_elements(const uint8_t* in, uint8_t* const* streams, uint64_t n, uint8_t code) {
    switch (code) {
        case kBf16Split:
            for (uint64_t j = 0; j < n; ++j) {
                const unsigned x = unsigned{in[2 * j]} | unsigned{in[2 * j + 1]} << 8;
                streams[0][j] = static_cast<uint8_t>(x >> 7);
                streams[1][j] = static_cast<uint8_t>((x >> 8 & 0x80) | (x & 0x7f));
            }
            return;
        case kF32Split:
            for (uint64_t j = 0; j < n; ++j) {
                const uint8_t* e = in + 4 * j;
                streams[0][j] = static_cast<uint8_t>((e[3] << 1) | (e[2] >> 7));
                streams[1][j] = static_cast<uint8_t>((e[3] & 0x80) | (e[2] & 0x7f));
                streams[2][j] = e[1];
                streams[3][j] = e[0];
            }
            return;
        default:
            for (unsigned k = 0; k < width_of(code); ++k)
                for (uint64_t j = 0; j < n; ++j) streams[k][j] = in[j * width_of(code) + k];
    }
}

void store_elements(const uint8_t* const* streams, uint8_t* out, uint64_t n, uint8_t code) {
    switch (code) {
        case kBf16Split:
            for (uint64_t j = 0; j < n; ++j) {
                const unsigned ex = streams[0][j], sm = streams[1][j];
                out[2 * j] = static_cast<uint8_t>((ex << 7) | (sm & 0x7f));
                out[2 * j + 1] = static_cast<uint8_t>((sm & 0x80) | (ex >> 1));
            }
            return;
        case kF32Split:
            for (uint64_t j = 0; j < n; ++j) {
                const unsigned ex = streams[0][j], sm = streams[1][j];
                uint8_t* e = out + 4 * j;
                e[0] = streams[3][j];
                e[1] = streams[2][j];
                e[2] = static_cast<uint8_t>((ex << 7) | (sm & 0x7f));
                e[3] = static_cast<uint8_t>((sm & 0x80) | (ex >> 1));
            }
            return;
        case kGroup2:
            for (uint64_t j = 0; j < n; ++j) out[2 * j] = streams[0][j], out[2 * j + 1] = streams[1][j];
            return;
        default:
            for (unsigned k = 0; k < width_of(code); ++k)
                for (uint64_t j = 0; j < n; ++j) out[j * width_of(code) + k] = streams[k][j];
    }
}

// The first `bytes` bytes (whole elements) transformed into `out`, and back.
void group(const uint8_t* in, uint8_t* out, uint64_t bytes, uint8_t code) {
    const unsigned w = width_of(code);
    const uint64_t n = bytes / w;
    uint8_t* streams[4] = {out, out + n, out + 2 * n, out + 3 * n};
    load_elements(in, streams, n, code);
}
void ungroup(const uint8_t* in, uint8_t* out, uint64_t bytes, uint8_t code) {
    const unsigned w = width_of(code);
    const uint64_t n = bytes / w;
    const uint8_t* streams[4] = {in, in + n, in + 2 * n, in + 3 * n};
    store_elements(streams, out, n, code);
}

uint8_t transform_for(TypeId t) {
    switch (t) {
        case TypeId::F16: return kGroup2;
        case TypeId::BF16: return kBf16Split;
        case TypeId::F32: return kF32Split;
        default: return kNone;
    }
}

struct Piece {
    uint64_t offset = 0, size = 0;
    uint8_t code = kNone;
    uint64_t grouped = 0;
};

// The frames of a file: its header, then each tensor's bytes with the padding after them, in
// pieces of at most `most` bytes (whole elements when grouped).
std::vector<Piece> plan_pieces(const File& f, const CompressOptions& o) {
    std::vector<Piece> out;
    const uint64_t start = f.data_section_offset(), end = f.size();
    out.push_back({0, std::min(start, end), kNone, 0});
    std::vector<const TensorInfo*> order;
    for (const TensorInfo& t : f.tensors()) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->data_offset < b->data_offset; });
    const uint64_t most = std::max<uint64_t>(4, o.frame_bytes / 4 * 4);
    auto add_region = [&](uint64_t from, uint64_t to, uint64_t data_end, uint8_t code) {
        const unsigned w = width_of(code);
        for (uint64_t at = from; at < to;) {
            const uint64_t n = std::min(most, to - at);
            Piece p{at, n, kNone, 0};
            if (w > 1 && data_end > at) {
                p.grouped = (std::min(at + n, data_end) - at) / w * w;
                if (p.grouped) p.code = code;
            }
            out.push_back(p);
            at += n;
        }
    };
    uint64_t at = start;
    for (size_t i = 0; i < order.size(); ++i) {
        const uint64_t begin = start + order[i]->data_offset;
        if (begin < at) continue;  // overlapping tensors (a strict open refuses them): already covered
        if (begin > at) add_region(at, begin, at, kNone);
        const uint64_t next = i + 1 < order.size() ? std::max(begin, start + order[i + 1]->data_offset) : end;
        add_region(begin, std::min(next, end), begin + order[i]->n_bytes, o.group_bytes ? transform_for(order[i]->type) : kNone);
        at = std::min(next, end);
    }
    if (at < end) add_region(at, end, at, kNone);
    return out;
}

// A frame zstd makes less than this much smaller is stored (raw blocks): decompressing it is
// a copy, several times faster than decoding what compression saved so little of (4-bit
// quantized weights: 2% saved, 0.9 GB/s to decode against 5 GB/s to copy on this machine).
constexpr double kMinSaving = 0.03;
constexpr int kStoreLevel = -1;  // zstd's negative levels keep literals raw: stored blocks for such data

class Compressor {
public:
    explicit Compressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {
        if (!ctx_) throw std::bad_alloc();
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_contentSizeFlag, 1);
    }
    ~Compressor() { ZSTD_freeCCtx(ctx_); }
    Compressor(const Compressor&) = delete;
    Compressor& operator=(const Compressor&) = delete;

    // The frame of piece p into `out` (resized to it); returns its checksum.
    uint32_t run(std::span<const uint8_t> original, const Piece& p, std::vector<uint8_t>& out) {
        std::span<const uint8_t> src = original.subspan(p.offset, p.size);
        if (p.code != kNone) {
            scratch_.resize(p.size);
            group(src.data(), scratch_.data(), p.grouped, p.code);
            std::memcpy(scratch_.data() + p.grouped, src.data() + p.grouped, p.size - p.grouped);
            src = scratch_;
        }
        // Split floats are literals (the exponent byte's few values, near-random mantissas):
        // the matches zstd finds in them cost more than they save, so it is given the
        // longest minimum match and the smallest match tables, and finds almost none (on a
        // trained model's BF16 weights: 2.6 bits an exponent byte instead of 3.2, and faster).
        const bool floats = p.code != kNone;
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_minMatch, floats ? 7 : 0);  // 0: the level's own
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_hashLog, floats ? 6 : 0);
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_chainLog, floats ? 6 : 0);
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level_);
        const size_t bound = ZSTD_compressBound(src.size()) + 64;  // and a block header for each stream's flush
        if (out.size() < bound) out.resize(bound);  // kept at its largest: no page faults per frame
        size_t n = compress(src, p, out);
        stored_ = static_cast<double>(n) > static_cast<double>(src.size()) * (1 - kMinSaving) && level_ > kStoreLevel;
        if (stored_) {
            ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, kStoreLevel);
            n = compress(src, p, out);
        }
        used_ = n;
        return load_u32(out.data() + n - 4);  // a frame with a checksum ends with it
    }
    size_t used() const { return used_; }      // the last frame's bytes
    bool stored() const { return stored_; }    // whether it was stored (saving under kMinSaving)

private:
    // One frame of `src`. A transformed frame's streams (all exponent bytes, then all
    // mantissa bytes, ...) each start a zstd block of their own (a flush between them): a
    // block mixing two streams would code their bytes with one Huffman table, which costs a
    // small tensor a tenth of its size.
    size_t compress(std::span<const uint8_t> src, const Piece& p, std::vector<uint8_t>& out) {
        auto check = [&](size_t r) {
            if (ZSTD_isError(r))
                throw std::runtime_error(fmt::format("zstd could not compress original bytes {} to {}: {}", p.offset, p.offset + p.size, ZSTD_getErrorName(r)));
            return r;
        };
        if (p.code == kNone) return check(ZSTD_compress2(ctx_, out.data(), out.size(), src.data(), src.size()));
        ZSTD_CCtx_reset(ctx_, ZSTD_reset_session_only);
        check(ZSTD_CCtx_setPledgedSrcSize(ctx_, src.size()));
        ZSTD_outBuffer o{out.data(), out.size(), 0};
        const uint64_t stream = p.grouped / width_of(p.code);
        for (uint64_t at = 0; at < src.size();) {
            const uint64_t n = at < p.grouped ? stream : src.size() - at;
            const bool last = at + n == src.size();
            ZSTD_inBuffer in{src.data() + at, n, 0};
            while (check(ZSTD_compressStream2(ctx_, &o, &in, last ? ZSTD_e_end : ZSTD_e_flush)) != 0)
                if (o.pos == o.size) throw std::runtime_error(fmt::format("zstd's output for original bytes {} to {} outgrew its bound", p.offset, p.offset + p.size));
            at += n;
        }
        return o.pos;
    }

    ZSTD_CCtx* ctx_;
    int level_;
    size_t used_ = 0;
    bool stored_ = false;
    std::vector<uint8_t> scratch_;
};

class Decompressor {
public:
    Decompressor() : ctx_(ZSTD_createDCtx()) {
        if (!ctx_) throw std::bad_alloc();
    }
    ~Decompressor() { ZSTD_freeDCtx(ctx_); }
    Decompressor(const Decompressor&) = delete;
    Decompressor& operator=(const Decompressor&) = delete;
    ZSTD_DCtx* get() { return ctx_; }
    std::vector<uint8_t> scratch;

private:
    ZSTD_DCtx* ctx_;
};

// Runs work(i, slot, worker) for i in [0, n) on `threads` worker threads, each taking the
// next item as it finishes one, while this thread runs done(i, slot) in order of i as soon as
// item i is ready: writing overlaps the work, and a long item holds up no other worker. At
// most `window` items are in flight; `slot` = i % window names the buffer item i may use
// until its done() returns, `worker` the thread (for per-thread state). The first exception,
// from either side, stops the rest and is rethrown.
template <class Work, class Done> void pipeline(size_t n, int threads, size_t window, Work work, Done done) {
    std::mutex m;
    std::condition_variable wake_workers, wake_writer;
    size_t claimed = 0, written = 0;
    std::vector<char> ready(window);
    std::exception_ptr error;
    bool stop = false;
    auto fail = [&] {
        const std::lock_guard<std::mutex> hold(m);
        if (!error) error = std::current_exception();
        stop = true;
        wake_workers.notify_all();
        wake_writer.notify_all();
    };
    auto worker = [&](int w) {
        for (;;) {
            size_t i;
            {
                std::unique_lock<std::mutex> hold(m);
                wake_workers.wait(hold, [&] { return stop || claimed >= n || claimed < written + window; });
                if (stop || claimed >= n) return;
                i = claimed++;
            }
            try {
                work(i, i % window, w);
            } catch (...) {
                fail();
                return;
            }
            const std::lock_guard<std::mutex> hold(m);
            ready[i % window] = 1;
            wake_writer.notify_one();
        }
    };
    std::vector<std::thread> pool;
    try {
        for (int w = 0; w < std::max(1, threads); ++w) pool.emplace_back(worker, w);
    } catch (...) {  // no thread to be had: those started are stopped
        fail();
        for (std::thread& t : pool) t.join();
        throw;
    }
    while (written < n) {
        std::unique_lock<std::mutex> hold(m);
        wake_writer.wait(hold, [&] { return stop || ready[written % window]; });
        if (stop) break;
        hold.unlock();
        try {
            done(written, written % window);
        } catch (...) {
            fail();
            break;
        }
        hold.lock();
        ready[written % window] = 0;
        ++written;
        wake_workers.notify_all();
    }
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace

Report compress(const std::filesystem::path& in, const std::filesystem::path& out, const CompressOptions& o,
                const std::function<void(const Progress&)>& progress) {
    if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel())
        throw std::invalid_argument(fmt::format("level {} is outside zstd's {} to {}", o.level, ZSTD_minCLevel(), ZSTD_maxCLevel()));
    if (o.frame_bytes < 4096 || o.frame_bytes > (uint64_t{1} << 31))
        throw std::invalid_argument("the frame size must be between 4 KiB and 2 GiB");
    refuse_overwrite(out, in);
    if (looks_compressed(in)) throw Error(in.string(), 0, "already a .gguf.zst (it starts with a zstd frame)");
    const File f = File::open(in.string());
    const std::span<const uint8_t> original = f.bytes();
    const std::vector<Piece> pieces = plan_pieces(f, o);
    if (pieces[0].size > (uint64_t{1} << 31))  // the header is one frame; the seek table holds 32-bit sizes
        throw Error(in.string(), std::nullopt, fmt::format("a header of {} bytes is more than one frame can hold (2 GiB)", pieces[0].size));

    Report r;
    r.bytes_in = original.size();
    const int threads = std::max(1, o.threads);
    std::vector<std::unique_ptr<Compressor>> workers;
    for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Compressor>(o.level));
    const size_t window = 2 * static_cast<size_t>(threads);
    struct Slot {
        std::vector<uint8_t> buffer;
        size_t bytes = 0;
        uint32_t checksum = 0;
        bool stored = false;
    };
    std::vector<Slot> slots(window);
    std::vector<uint8_t> seek, index;
    uint64_t done = 0;
    write_file_atomically(out, [&](ByteSink& sink) {
        pipeline(pieces.size(), threads, window,
                   [&](size_t i, size_t slot, int w) {
                       Slot& s = slots[slot];
                       s.checksum = workers[static_cast<size_t>(w)]->run(original, pieces[i], s.buffer);
                       s.bytes = workers[static_cast<size_t>(w)]->used();
                       s.stored = workers[static_cast<size_t>(w)]->stored();
                   },
                   [&](size_t i, size_t slot) {
                       const Slot& s = slots[slot];
                       const std::span<const uint8_t> c(s.buffer.data(), s.bytes);
                       sink.write(c);
                       put_u32(seek, static_cast<uint32_t>(c.size()));
                       put_u32(seek, static_cast<uint32_t>(pieces[i].size));
                       put_u32(seek, s.checksum);
                       index.push_back(pieces[i].code);
                       put_u32(index, static_cast<uint32_t>(pieces[i].grouped));
                       r.bytes_out += c.size();
                       r.frames++;
                       if (pieces[i].code != kNone) r.grouped_frames++;
                       if (s.stored) r.stored_frames++;
                       done += pieces[i].size;
                       if (progress) progress({done, original.size()});
                   });
        // The index, then the seek table, each a skippable frame that zstd tools pass over.
        std::vector<uint8_t> frame;
        put_u32(frame, kIndexFrame);
        put_u32(frame, static_cast<uint32_t>(12 + index.size()));
        frame.insert(frame.end(), kIndexTag, kIndexTag + 4);
        put_u32(frame, kIndexVersion);
        put_u32(frame, static_cast<uint32_t>(pieces.size()));
        frame.insert(frame.end(), index.begin(), index.end());
        put_u32(frame, kSeekTableFrame);
        put_u32(frame, static_cast<uint32_t>(seek.size() + kFooterBytes));
        frame.insert(frame.end(), seek.begin(), seek.end());
        put_u32(frame, static_cast<uint32_t>(pieces.size()));
        frame.push_back(0x80);  // the entries carry checksums
        put_u32(frame, kSeekableMagic);
        sink.write(frame);
        r.bytes_out += frame.size();
    });
    return r;
}

struct Container::State {
    std::string path;
    std::unique_ptr<Mapping> map;  // absent over bytes in memory
    std::span<const uint8_t> bytes;
    std::vector<Frame> frames;
    uint64_t original = 0;
};

Container::Container(std::unique_ptr<State> s) : s_(std::move(s)) {}
Container::~Container() = default;
Container::Container(Container&&) noexcept = default;
Container& Container::operator=(Container&&) noexcept = default;
const std::string& Container::path() const { return s_->path; }
uint64_t Container::original_size() const { return s_->original; }
uint64_t Container::container_size() const { return s_->bytes.size(); }
std::span<const Frame> Container::frames() const { return s_->frames; }

Container Container::open(const std::filesystem::path& path) {
    auto s = std::make_unique<State>();
    s->path = path.string();
    s->map = std::make_unique<Mapping>(path);
    s->bytes = s->map->bytes();
    return Container(std::move(s)).index();
}

Container Container::from_bytes(std::span<const uint8_t> bytes, std::string name) {
    auto s = std::make_unique<State>();
    s->path = std::move(name);
    s->bytes = bytes;
    return Container(std::move(s)).index();
}

Container&& Container::index() && {
    State* s = s_.get();
    const std::span<const uint8_t> b = s->bytes;
    const uint64_t size = b.size();
    auto fail = [&](uint64_t at, const std::string& what) -> Error { return Error(s->path, at, what); };
    if (size < 4 || load_u32(b.data()) != kZstdMagic) throw fail(0, "not a .gguf.zst: it does not start with a zstd frame");
    if (size < kFooterBytes + 8 || load_u32(b.data() + size - 4) != kSeekableMagic)
        throw fail(size < 4 ? 0 : size - 4, "no seek table at the end (truncated, or compressed without one: zstd's seekable format is needed)");
    const uint64_t n = load_u32(b.data() + size - 9);
    const uint8_t descriptor = b[size - 5];
    if (descriptor & 0x7c) throw fail(size - 5, fmt::format("seek table descriptor {:#04x} sets reserved bits", descriptor));
    const uint64_t entry = descriptor & 0x80 ? 12 : 8;
    const uint64_t table = n * entry + kFooterBytes;
    if (table + 8 > size) throw fail(size - 9, fmt::format("the seek table claims {} frames, more than the file can hold", n));
    const uint64_t table_frame = size - table - 8;
    if (load_u32(b.data() + table_frame) != kSeekTableFrame || load_u32(b.data() + table_frame + 4) != table)
        throw fail(table_frame, "the seek table's skippable frame header does not match its footer");
    s->frames.resize(n);
    uint64_t at = 0, offset = 0;
    for (uint64_t i = 0; i < n; ++i) {
        const uint8_t* e = b.data() + table_frame + 8 + i * entry;
        Frame& fr = s->frames[i];
        fr.at = at;
        fr.compressed = load_u32(e);
        fr.offset = offset;
        fr.size = load_u32(e + 4);
        if (entry == 12) fr.checksum = load_u32(e + 8);
        if (fr.compressed == 0 || at + fr.compressed > table_frame)
            throw fail(table_frame + 8 + i * entry, fmt::format("seek table entry {}: frame of {} bytes at {} runs past the frames", i, fr.compressed, at));
        // The frame's own header must state the size the table gives (what a reader sizes
        // its buffer by): checked now, before anything is allocated for it.
        const unsigned long long content = ZSTD_getFrameContentSize(b.data() + at, fr.compressed);
        if (content != fr.size)
            throw fail(at, content == ZSTD_CONTENTSIZE_ERROR     ? fmt::format("frame {} is not a zstd frame", i)
                           : content == ZSTD_CONTENTSIZE_UNKNOWN ? fmt::format("frame {} does not state its size (gguf compress writes every frame's)", i)
                                                                 : fmt::format("frame {}: its header says {} bytes, the seek table {}", i, content, fr.size));
        at += fr.compressed;
        offset += fr.size;
    }
    s->original = offset;
    // Our index, between the last frame and the seek table; a seekable file without it has
    // no grouped frames.
    if (at < table_frame) {
        const uint64_t index_bytes = 12 + n * kIndexEntryBytes;
        if (table_frame - at != 8 + index_bytes || load_u32(b.data() + at) != kIndexFrame || load_u32(b.data() + at + 4) != index_bytes ||
            std::memcmp(b.data() + at + 8, kIndexTag, 4) != 0)
            throw fail(at, "unexpected bytes between the last frame and the seek table (not ggufkit's index)");
        if (load_u32(b.data() + at + 12) != kIndexVersion) throw fail(at + 12, fmt::format("index version {} (this reader knows 1)", load_u32(b.data() + at + 12)));
        if (load_u32(b.data() + at + 16) != n) throw fail(at + 16, "the index and the seek table count different frames");
        for (uint64_t i = 0; i < n; ++i) {
            const uint8_t* e = b.data() + at + 20 + i * kIndexEntryBytes;
            Frame& fr = s->frames[i];
            fr.group = e[0];
            fr.grouped = load_u32(e + 1);
            if (!known_transform(fr.group) || fr.grouped > fr.size || fr.grouped % width_of(fr.group))
                throw fail(at + 20 + i * kIndexEntryBytes, fmt::format("index entry {}: transform {:#04x} of {} bytes in a frame of {}", i, fr.group, fr.grouped, fr.size));
        }
    }
    return std::move(*this);
}

size_t Container::frame_at(uint64_t offset) const {
    const auto it = std::upper_bound(s_->frames.begin(), s_->frames.end(), offset, [](uint64_t o, const Frame& f) { return o < f.offset; });
    if (it == s_->frames.begin() || offset >= s_->original) throw std::out_of_range("offset past the original file");
    return static_cast<size_t>(it - s_->frames.begin() - 1);
}

void Container::read_frame(size_t i, std::span<uint8_t> out) const {
    static thread_local Decompressor d;
    const Frame& f = s_->frames.at(i);
    if (out.size() != f.size) throw std::invalid_argument("read_frame: the output must hold the frame's bytes");
    const uint8_t* src = s_->bytes.data() + f.at;
    auto damaged = [&](const std::string& what) {
        return Error(s_->path, f.at, fmt::format("frame {} (original bytes {} to {}) is damaged: {}", i, f.offset, f.offset + f.size, what));
    };
    const unsigned long long content = ZSTD_getFrameContentSize(src, f.compressed);
    if (content != f.size) throw damaged(fmt::format("its header says {} bytes, the seek table {}", content, f.size));
    if (f.checksum && f.compressed >= 4 && load_u32(src + f.compressed - 4) != f.checksum)
        throw damaged("its checksum differs from the seek table's");
    uint8_t* dst = out.data();
    if (f.group != kNone) {
        d.scratch.resize(f.size);
        dst = d.scratch.data();
    }
    const size_t n = ZSTD_decompressDCtx(d.get(), dst, f.size, src, f.compressed);
    if (ZSTD_isError(n)) throw damaged(ZSTD_getErrorName(n));
    if (n != f.size) throw damaged(fmt::format("it holds {} bytes, not {}", n, f.size));
    if (f.group != kNone) {
        ungroup(dst, out.data(), f.grouped, f.group);
        std::memcpy(out.data() + f.grouped, dst + f.grouped, f.size - f.grouped);
    }
}

void Container::read(uint64_t offset, std::span<uint8_t> out) const {
    if (out.empty()) return;
    if (offset > s_->original || out.size() > s_->original - offset) throw std::out_of_range("read past the original file");
    std::vector<uint8_t> buffer;
    for (size_t i = frame_at(offset); !out.empty(); ++i) {
        const Frame& f = s_->frames[i];
        const uint64_t skip = offset - f.offset, n = std::min<uint64_t>(out.size(), f.size - skip);
        if (skip == 0 && n == f.size) {
            read_frame(i, out.first(n));
        } else {
            buffer.resize(f.size);
            read_frame(i, buffer);
            std::memcpy(out.data(), buffer.data() + skip, n);
        }
        out = out.subspan(n);
        offset += n;
    }
}

// Which frames are decompressed; a frame is decompressed under the lock of its stripe, so
// threads reading different tensors decompress at once.
struct LazyImage::Done {
    static constexpr size_t kStripes = 64;
    std::mutex locks[kStripes];
    std::unique_ptr<std::atomic<bool>[]> frames;
    std::mutex& lock(size_t frame) { return locks[frame % kStripes]; }
};

LazyImage::LazyImage(Container c) : c_(std::move(c)), size_(c_.original_size()), done_(std::make_unique<Done>()) {
    done_->frames = std::make_unique<std::atomic<bool>[]>(c_.frames().size());
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        throw Error(c_.path(), std::nullopt, fmt::format("cannot reserve {} bytes of address space for the decompressed file: {}", size_, std::strerror(errno)));
    data_ = static_cast<uint8_t*>(p);
}

LazyImage::~LazyImage() {
    if (data_) ::munmap(data_, size_);
}

void LazyImage::ensure(uint64_t offset, uint64_t n) const {
    if (n == 0 || offset >= size_) return;
    const uint64_t end = std::min(size_, offset + n);
    for (size_t i = c_.frame_at(offset); i < c_.frames().size() && c_.frames()[i].offset < end; ++i) {
        if (done_->frames[i].load(std::memory_order_acquire)) continue;
        const std::lock_guard<std::mutex> hold(done_->lock(i));
        if (done_->frames[i].load(std::memory_order_relaxed)) continue;
        const Frame& f = c_.frames()[i];
        c_.read_frame(i, std::span<uint8_t>(data_ + f.offset, f.size));
        done_->frames[i].store(true, std::memory_order_release);
    }
}

void LazyImage::release(uint64_t offset, uint64_t n) const {
    if (n == 0 || offset >= size_) return;
    const uint64_t end = std::min(size_, offset + n);
    static const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const auto base = reinterpret_cast<uintptr_t>(data_);
    for (size_t i = c_.frame_at(offset); i < c_.frames().size() && c_.frames()[i].offset < end; ++i) {
        const Frame& f = c_.frames()[i];
        const std::lock_guard<std::mutex> hold(done_->lock(i));
        if (f.offset < offset || f.offset + f.size > end || !done_->frames[i].load(std::memory_order_relaxed)) continue;
        done_->frames[i].store(false, std::memory_order_release);
        const uint64_t first = (base + f.offset + page - 1) / page * page, last = (base + f.offset + f.size) / page * page;
        if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    }
}

bool looks_compressed(std::span<const uint8_t> first_bytes) { return first_bytes.size() >= 4 && load_u32(first_bytes.data()) == kZstdMagic; }

bool looks_compressed(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    uint8_t b[4] = {};
    return in.read(reinterpret_cast<char*>(b), 4) && load_u32(b) == kZstdMagic;
}

Report decompress(const std::filesystem::path& in, const std::filesystem::path& out, int threads,
                  const std::function<void(const Progress&)>& progress) {
    refuse_overwrite(out, in);
    const Container c = Container::open(in);
    Report r;
    r.bytes_in = c.container_size();
    const size_t window = 2 * static_cast<size_t>(std::max(1, threads));
    std::vector<std::vector<uint8_t>> buffers(window);
    uint64_t done = 0;
    write_file_atomically(out, [&](ByteSink& sink) {
        pipeline(c.frames().size(), threads, window,
                   [&](size_t i, size_t slot, int) {
                       buffers[slot].resize(c.frames()[i].size);
                       c.read_frame(i, buffers[slot]);
                   },
                   [&](size_t i, size_t slot) {
                       const Frame& f = c.frames()[i];
                       sink.write(buffers[slot]);
                       r.bytes_out += f.size;
                       r.frames++;
                       if (f.group != kNone) r.grouped_frames++;
                       done += f.size;
                       if (progress) progress({done, c.original_size()});
                   });
    });
    return r;
}

}  // namespace gguf::zst
