#include "infer/kld_base.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace infer {

namespace {

constexpr std::string_view kTokens = "kld.tokens", kLogits = "kld.logits";

std::span<const uint8_t> as_bytes(std::span<const float> v) { return {reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()}; }

[[noreturn]] void refuse(const gguf::File& f, const std::string& message) { throw gguf::Error(f.path(), std::nullopt, message); }

std::string shape_text(std::span<const uint64_t> shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace

// ---- Writing -------------------------------------------------------------------------------

KldBaseWriter::KldBaseWriter(KldBaseInfo info, std::vector<int32_t> ids) : info_(std::move(info)), ids_(std::move(ids)) {
    if (info_.n_ctx < 3) throw std::invalid_argument(fmt::format("kld base: a context of {} tokens scores no position (3 at least)", info_.n_ctx));
    if (info_.chunks == 0 || info_.n_vocab == 0) throw std::invalid_argument("kld base: no chunks or an empty vocabulary");
    if (ids_.size() != uint64_t{info_.chunks} * info_.n_ctx)
        throw std::invalid_argument(fmt::format("kld base: {} token ids given for {} chunks of {}", ids_.size(), info_.chunks, info_.n_ctx));
}

void KldBaseWriter::Chunks::append(std::span<const float> logits) {
    const uint64_t want = uint64_t{info_.scored_per_chunk()} * info_.n_vocab;
    if (appended_ == info_.chunks)
        throw std::invalid_argument(fmt::format("kld base: chunk {} appended to a file of {} chunks", appended_ + 1, info_.chunks));
    if (logits.size() != want)
        throw std::invalid_argument(fmt::format("kld base: chunk {} has {} logits, {} x {} expected", appended_ + 1, logits.size(),
                                                info_.scored_per_chunk(), info_.n_vocab));
    out_.write(as_bytes(logits));
    ++appended_;
}

gguf::Writer KldBaseWriter::writer(const std::function<void(Chunks&)>& produce) const {
    using gguf::OwnedValue;
    gguf::Writer w;
    w.set("general.type", OwnedValue::string(std::string(kKldBaseType)));
    w.set("kld.format_version", OwnedValue::u32(kKldBaseFormatVersion));
    w.set("kld.context_size", OwnedValue::u32(info_.n_ctx));
    w.set("kld.chunk_count", OwnedValue::u32(info_.chunks));
    w.set("kld.vocab_size", OwnedValue::u32(info_.n_vocab));
    w.set("kld.first_scored_position", OwnedValue::u32(info_.first_scored()));
    w.set("kld.arithmetic", OwnedValue::string(std::string(arithmetic_name(info_.arithmetic))));
    w.set("kld.base.name", OwnedValue::string(info_.base_name));
    w.set("kld.base.path", OwnedValue::string(info_.base_path));
    w.set("kld.text", OwnedValue::string(info_.text));
    w.set("kld.products", OwnedValue::string(info_.products));
    w.add_tensor(std::string(kTokens), gguf::TypeId::I32, {info_.n_ctx, info_.chunks},
                 std::span(reinterpret_cast<const uint8_t*>(ids_.data()), ids_.size() * sizeof(int32_t)));
    // The evaluation runs here, as the writer reaches this tensor's bytes.
    w.add_tensor(std::string(kLogits), gguf::TypeId::F32, {info_.n_vocab, info_.scored_per_chunk(), info_.chunks},
                 [this, &produce](gguf::ByteSink& out) {
                     Chunks chunks(info_, out);
                     produce(chunks);
                     if (chunks.appended() != info_.chunks)
                         throw std::invalid_argument(fmt::format("kld base: {} of {} chunks appended", chunks.appended(), info_.chunks));
                 });
    return w;
}

void KldBaseWriter::write(const std::filesystem::path& path, const std::function<void(Chunks&)>& produce) const {
    writer(produce).write(path);
}

std::vector<uint8_t> KldBaseWriter::write_to_memory(const std::function<void(Chunks&)>& produce) const {
    return writer(produce).write_to_memory();
}

// ---- Reading -------------------------------------------------------------------------------

KldBaseReader KldBaseReader::open(const std::filesystem::path& path) { return KldBaseReader(gguf::File::open(path)); }

KldBaseReader KldBaseReader::parse(std::span<const uint8_t> bytes, std::string name) {
    return KldBaseReader(gguf::File::parse(bytes, std::move(name)));
}

KldBaseReader::KldBaseReader(gguf::File file) : file_(std::move(file)) {
    const gguf::KeyValue* version = file_.find("kld.format_version");
    if (!version) {
        const gguf::KeyValue* type = file_.find("general.type");
        const std::string what = type && type->value.type() == gguf::ValueType::String
                                     ? fmt::format(" (its general.type is '{}')", type->value.str())
                                     : file_.find("general.architecture") ? std::string(" (it looks like a model)") : std::string();
        refuse(file_, "not a KL-divergence base file: it has no kld.format_version key" + what +
             "; 'gguf kld BASE -f TEXT --save-base FILE' writes one");
    }
    if (version->value.type() != gguf::ValueType::U32)
        refuse(file_, fmt::format("kld.format_version is a {}, not a u32", gguf::value_type_name(version->value.type())));
    if (version->value.u32() != kKldBaseFormatVersion)
        refuse(file_, fmt::format("KL-divergence base format version {}; this build reads version {}", version->value.u32(), kKldBaseFormatVersion));
    if (file_.big_endian()) refuse(file_, "a big-endian file: KL-divergence base files are little-endian");

    const auto key = [&](std::string_view name, gguf::ValueType type) -> const gguf::Value& {
        const gguf::KeyValue* kv = file_.find(name);
        if (!kv) refuse(file_, fmt::format("the key {} is missing", name));
        if (kv->value.type() != type)
            refuse(file_, fmt::format("the key {} is a {}, not a {}", name, gguf::value_type_name(kv->value.type()), gguf::value_type_name(type)));
        return kv->value;
    };
    const auto u32 = [&](std::string_view name) { return key(name, gguf::ValueType::U32).u32(); };
    const auto str = [&](std::string_view name) { return std::string(key(name, gguf::ValueType::String).str()); };
    info_.n_ctx = u32("kld.context_size");
    info_.chunks = u32("kld.chunk_count");
    info_.n_vocab = u32("kld.vocab_size");
    const uint32_t first = u32("kld.first_scored_position");
    const std::string arithmetic = str("kld.arithmetic");
    info_.base_name = str("kld.base.name");
    info_.base_path = str("kld.base.path");
    info_.text = str("kld.text");
    if (file_.find("kld.products")) info_.products = str("kld.products");
    if (info_.n_ctx < 3 || info_.chunks == 0 || info_.n_vocab == 0)
        refuse(file_, fmt::format("kld.context_size {}, kld.chunk_count {}, kld.vocab_size {}: nothing scored", info_.n_ctx, info_.chunks, info_.n_vocab));
    if (first != info_.first_scored())
        refuse(file_, fmt::format("kld.first_scored_position is {}; format version {} scores from n_ctx / 2 = {}", first, kKldBaseFormatVersion,
                         info_.first_scored()));
    if (arithmetic == "f32")
        info_.arithmetic = Arithmetic::F32;
    else if (arithmetic == "ggml")
        info_.arithmetic = Arithmetic::Ggml;
    else
        refuse(file_, fmt::format("kld.arithmetic is '{}', not 'f32' or 'ggml'", arithmetic));

    // Each tensor of its type and exactly the shape the keys give (trailing 1s aside).
    const auto tensor = [&](std::string_view name, gguf::TypeId type, std::vector<uint64_t> shape) -> const uint8_t* {
        const gguf::TensorInfo* t = file_.find_tensor(name);
        if (!t) refuse(file_, fmt::format("the tensor {} is missing", name));
        std::array<uint64_t, gguf::kMaxDims> want{1, 1, 1, 1};
        std::copy(shape.begin(), shape.end(), want.begin());
        if (t->type != type || t->shape != want)
            refuse(file_, fmt::format("the tensor {} is {} {}; the keys (kld.vocab_size, kld.context_size, kld.chunk_count) make it {} {}", name,
                             gguf::type_info(t->type).name, shape_text(t->dims()), gguf::type_info(type).name, shape_text(shape)));
        const std::span<const uint8_t> data = file_.tensor_data(*t);
        if (reinterpret_cast<uintptr_t>(data.data()) % alignof(float) != 0)
            refuse(file_, fmt::format("the tensor {} does not start at a multiple of 4 bytes (general.alignment {})", name, file_.alignment()));
        return data.data();
    };
    ids_ = reinterpret_cast<const int32_t*>(tensor(kTokens, gguf::TypeId::I32, {info_.n_ctx, info_.chunks}));
    logits_ = reinterpret_cast<const float*>(tensor(kLogits, gguf::TypeId::F32, {info_.n_vocab, info_.scored_per_chunk(), info_.chunks}));
}

std::span<const int32_t> KldBaseReader::chunk_ids(uint32_t i) const {
    if (i >= info_.chunks) throw std::out_of_range(fmt::format("{}: chunk {} of {}", path(), i, info_.chunks));
    return {ids_ + size_t{i} * info_.n_ctx, info_.n_ctx};
}

std::span<const float> KldBaseReader::chunk_logits(uint32_t i) const {
    if (i >= info_.chunks) throw std::out_of_range(fmt::format("{}: chunk {} of {}", path(), i, info_.chunks));
    const size_t per_chunk = size_t{info_.scored_per_chunk()} * info_.n_vocab;
    return {logits_ + i * per_chunk, per_chunk};
}

void KldBaseReader::release_chunk(uint32_t i) const {
    const std::span<const float> logits = chunk_logits(i);
    file_.release_pages({reinterpret_cast<const uint8_t*>(logits.data()), logits.size_bytes()});
}

}  // namespace infer
