// ggufkit._ggufkit: the Python binding of libgguf, quant/ and kernels/ (pybind11). The
// Python package (python/ggufkit/__init__.py) re-exports it; see there for the API's
// documentation as users read it.
//
// Zero copy: a file stays mapped as long as any object handed out from it (a tensor, a
// metadata array, a raw view) is alive; each numpy view keeps the file object as its base.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <regex>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "gguf/types.h"
#include "gguf/value.h"
#include "gguf/check.h"
#include "gguf/writer.h"
#include "kernels/check_model.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "quant/imatrix.h"
#include "requant/error.h"
#include "requant/plan.h"
#include "requant/run.h"

namespace py = pybind11;

namespace {

// An open file or split set, shared by everything handed out from it.
struct Opened {
    gguf::Model model;
    explicit Opened(gguf::Model m) : model(std::move(m)) {}
};
using OpenedPtr = std::shared_ptr<Opened>;

// A Python object that keeps `owner` alive: the base of zero-copy numpy views.
py::object keeper(const OpenedPtr& owner) { return py::cast(owner); }

// The numpy dtype of a fixed-size metadata value type; none for bool, string and array.
py::dtype numpy_dtype(gguf::ValueType t, bool big_endian) {
    const char order = big_endian ? '>' : '<';
    switch (t) {
    case gguf::ValueType::U8: return py::dtype("u1");
    case gguf::ValueType::I8: return py::dtype("i1");
    case gguf::ValueType::U16: return py::dtype(std::string(1, order) + "u2");
    case gguf::ValueType::I16: return py::dtype(std::string(1, order) + "i2");
    case gguf::ValueType::U32: return py::dtype(std::string(1, order) + "u4");
    case gguf::ValueType::I32: return py::dtype(std::string(1, order) + "i4");
    case gguf::ValueType::U64: return py::dtype(std::string(1, order) + "u8");
    case gguf::ValueType::I64: return py::dtype(std::string(1, order) + "i8");
    case gguf::ValueType::F32: return py::dtype(std::string(1, order) + "f4");
    case gguf::ValueType::F64: return py::dtype(std::string(1, order) + "f8");
    case gguf::ValueType::Bool: return py::dtype("?");
    default: throw std::logic_error("no numpy dtype for this value type");
    }
}

// A string array, read lazily: element i is decoded when asked for. The offsets of the
// elements are found in one pass the first time one is asked for by index.
class StringArray {
public:
    StringArray(OpenedPtr owner, gguf::ArrayView array) : owner_(std::move(owner)), array_(array) {}
    size_t size() const { return static_cast<size_t>(array_.size()); }
    py::str at(int64_t i) const {
        const int64_t n = static_cast<int64_t>(size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw py::index_error("string array index out of range");
        index();
        return decode(items_[static_cast<size_t>(i)]);
    }
    py::list slice(const py::slice& s) const {
        size_t start, stop, step, count;
        if (!s.compute(size(), &start, &stop, &step, &count)) throw py::error_already_set();
        index();
        py::list out;
        for (size_t k = 0; k < count; ++k) out.append(decode(items_[start + k * step]));
        return out;
    }
    py::list to_list() const {
        py::list out;
        for (const gguf::Value v : array_) out.append(decode(v.str()));
        return out;
    }

private:
    static py::str decode(std::string_view s) {
        // Invalid UTF-8 (a byte-level vocabulary may hold it) is kept, escaped, not refused.
        PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
        if (!o) throw py::error_already_set();
        return py::reinterpret_steal<py::str>(o);
    }
    void index() const {
        std::call_once(indexed_, [this] {
            items_.reserve(size());
            for (const gguf::Value v : array_) items_.push_back(v.str());
        });
    }
    OpenedPtr owner_;
    gguf::ArrayView array_;
    mutable std::once_flag indexed_;
    mutable std::vector<std::string_view> items_;
};

py::object to_python(const OpenedPtr& owner, const gguf::Value& v, bool big_endian);

py::object array_to_python(const OpenedPtr& owner, const gguf::ArrayView& a, bool big_endian) {
    switch (a.element_type()) {
    case gguf::ValueType::String: return py::cast(std::make_shared<StringArray>(owner, a));
    case gguf::ValueType::Array: {
        py::list out;
        for (const gguf::Value v : a) out.append(to_python(owner, v, big_endian));
        return out;
    }
    default: {
        // Numbers and bools: a read-only numpy view of the file's bytes.
        py::array view(numpy_dtype(a.element_type(), big_endian), {static_cast<py::ssize_t>(a.size())}, {}, a.bytes().data(), keeper(owner));
        py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return view;
    }
    }
}

py::object to_python(const OpenedPtr& owner, const gguf::Value& v, bool big_endian) {
    using T = gguf::ValueType;
    switch (v.type()) {
    case T::U8: case T::U16: case T::U32: case T::U64: return py::int_(v.as_uint());
    case T::I8: case T::I16: case T::I32: case T::I64: return py::int_(v.as_int());
    case T::F32: return py::float_(static_cast<double>(v.f32()));
    case T::F64: return py::float_(v.f64());
    case T::Bool: return py::bool_(v.boolean());
    case T::String: {
        const std::string_view s = v.str();
        PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
        if (!o) throw py::error_already_set();
        return py::reinterpret_steal<py::str>(o);
    }
    case T::Array: return array_to_python(owner, v.array(), big_endian);
    }
    throw std::logic_error("unknown value type");
}

// The file's keys as a read-only mapping; values are converted when read.
class Metadata {
public:
    explicit Metadata(OpenedPtr owner) : owner_(std::move(owner)) {}
    size_t size() const { return owner_->model.kvs().size(); }
    bool contains(const std::string& key) const { return owner_->model.find(key) != nullptr; }
    py::object get(const std::string& key) const {
        const gguf::KeyValue* kv = owner_->model.find(key);
        if (!kv) throw py::key_error(key);
        return to_python(owner_, kv->value, owner_->model.first().big_endian());
    }
    std::string type_of(const std::string& key) const {
        const gguf::KeyValue* kv = owner_->model.find(key);
        if (!kv) throw py::key_error(key);
        std::string t(gguf::value_type_name(kv->value.type()));
        if (kv->value.type() == gguf::ValueType::Array) t += "[" + std::string(gguf::value_type_name(kv->value.array().element_type())) + "]";
        return t;
    }
    uint64_t offset_of(const std::string& key) const {
        const gguf::KeyValue* kv = owner_->model.find(key);
        if (!kv) throw py::key_error(key);
        return kv->file_offset;
    }
    py::list keys() const {
        py::list out;
        for (const gguf::KeyValue& kv : owner_->model.kvs()) out.append(py::str(std::string(kv.key)));
        return out;
    }

private:
    OpenedPtr owner_;
};

struct TensorType {
    std::string name;
    uint32_t id;
    uint32_t block_size, type_size;
    bool quantized;
};

TensorType describe(gguf::TypeId t) {
    const gguf::TypeInfo& info = gguf::type_info(t);
    return {std::string(info.name), static_cast<uint32_t>(t), info.block_size, info.type_size, info.quantized};
}

gguf::TypeId type_from(const py::object& type) {
    if (py::isinstance<py::int_>(type)) {
        const py::int_ i = py::reinterpret_borrow<py::object>(type);
        if (i < py::int_(0) || i >= py::int_(gguf::kTypeCount) || gguf::type_info(static_cast<gguf::TypeId>(i.cast<uint32_t>())).retired)
            throw py::value_error("unknown tensor type id " + py::str(type).cast<std::string>());
        return static_cast<gguf::TypeId>(i.cast<uint32_t>());
    }
    if (py::isinstance<TensorType>(type)) return static_cast<gguf::TypeId>(type.cast<TensorType>().id);
    const auto name = type.cast<std::string>();
    const auto t = gguf::type_from_name(name);
    if (!t) throw py::value_error("unknown tensor type '" + name + "'");
    return *t;
}

// Dequantizes n_rows rows of `row` values on up to `threads` threads, without the GIL.
void dequantize_rows(gguf::TypeId type, const uint8_t* src, int64_t n_rows, int64_t row, float* dst, int threads) {
    const uint64_t row_bytes = quant::row_bytes(type, row);
    py::gil_scoped_release release;
    quant::for_each_row_range(n_rows, quant::thread_count(threads), [&](int64_t begin, int64_t end) {
        kernels::dequantize(type, {src + begin * row_bytes, static_cast<size_t>((end - begin) * row_bytes)},
                            {dst + begin * row, static_cast<size_t>((end - begin) * row)});
    });
}

class Tensor {
public:
    Tensor(OpenedPtr owner, const gguf::Model::Tensor* t) : owner_(std::move(owner)), t_(t) {}
    std::string name() const { return std::string(t_->info->name); }
    TensorType type() const { return describe(t_->info->type); }
    // numpy order: the slowest-varying dimension first, ggml's ne[0] (the row) last.
    py::tuple shape() const {
        const auto dims = t_->info->dims();
        py::tuple out(dims.size());
        for (size_t i = 0; i < dims.size(); ++i) out[i] = py::int_(dims[dims.size() - 1 - i]);
        return out;
    }
    uint64_t n_elements() const { return t_->info->n_elements; }
    uint64_t nbytes() const { return t_->info->n_bytes; }
    // Where the tensor's bytes start in its file (the part's, for a split set).
    uint64_t offset() const { return part().data_section_offset() + t_->info->data_offset; }
    uint32_t part_index() const { return t_->part; }
    const OpenedPtr& owner() const { return owner_; }
    // Where the tensor info is in its file, and the data's offset within the data section.
    py::dict info() const {
        py::dict d;
        d["file_offset"] = t_->info->file_offset;
        d["data_offset"] = t_->info->data_offset;
        return d;
    }
    const gguf::Model::Tensor& entry() const { return *t_; }

    py::array raw() const {
        const auto bytes = data();
        py::array view(py::dtype("u1"), {static_cast<py::ssize_t>(bytes.size())}, {}, bytes.data(), keeper(owner_));
        read_only(view);
        return view;
    }

    py::array numpy(const py::object& dtype, int threads) const {
        const gguf::TypeId type = t_->info->type;
        const auto bytes = data();
        const bool want_f32 = dtype.is_none() || py::dtype::from_args(dtype).is(py::dtype::of<float>());
        const bool little = !part().big_endian();
        // Zero-copy where the file already holds the asked-for dtype: f32, f16 as float16, and
        // bf16 as its bits (uint16: numpy has no bfloat16).
        const auto asked = [&](const char* d) { return !dtype.is_none() && py::dtype::from_args(dtype).is(py::dtype(d)); };
        const char* own = type == gguf::TypeId::F32 && want_f32 ? "f4" : type == gguf::TypeId::F16 && asked("f2") ? "f2"
                        : type == gguf::TypeId::BF16 && asked("u2") ? "u2" : nullptr;
        if (little && own) {
            py::array view(py::dtype(own), shape_vector(), {}, bytes.data(), keeper(owner_));
            read_only(view);
            return view;
        }
        if (!little) throw py::value_error("tensor '" + name() + "': dequantizing a big-endian file is not supported; gguf edit can convert it");
        if (!kernels::can_dequantize(type))
            throw py::value_error("tensor '" + name() + "': type " + std::string(gguf::type_info(type).name) + " cannot be dequantized");
        const int64_t row = static_cast<int64_t>(t_->info->shape[0]);
        const int64_t rows = static_cast<int64_t>(t_->info->n_elements) / (row ? row : 1);
        py::array_t<float> out(shape_vector());
        dequantize_rows(type, bytes.data(), rows, row, out.mutable_data(), threads);
        if (want_f32) return out;
        return out.attr("astype")(dtype);
    }

private:
    const gguf::File& part() const { return owner_->model.parts()[t_->part]; }
    std::span<const uint8_t> data() const {
        const auto bytes = owner_->model.tensor_data(*t_);
        if (bytes.size() != t_->info->n_bytes) throw py::value_error("tensor '" + name() + "': its data is not in the file");
        return bytes;
    }
    std::vector<py::ssize_t> shape_vector() const {
        const auto dims = t_->info->dims();
        std::vector<py::ssize_t> out;
        for (size_t i = dims.size(); i-- > 0;) out.push_back(static_cast<py::ssize_t>(dims[i]));
        return out;
    }
    static void read_only(py::array& a) { py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_; }
    OpenedPtr owner_;
    const gguf::Model::Tensor* t_;
};

// The C-contiguous float32 values of `array` (a copy only when it is not already that).
py::array_t<float, py::array::c_style | py::array::forcecast> floats(const py::object& array) {
    return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(array);
}

// quant::ScaleFit from the Python keyword `scales`.
quant::ScaleFit scale_fit_from(const std::string& where, const std::string& name) {
    if (name == "default") return quant::ScaleFit::Default;
    if (name == "least-squares") return quant::ScaleFit::LeastSquares;
    if (name == "unbiased") return quant::ScaleFit::Unbiased;
    throw py::value_error(where + ": scales must be default, least-squares or unbiased, not '" + name + "'");
}

py::array_t<uint8_t> quantize(const py::object& array, const py::object& type_arg, const py::object& importance, int threads, const std::string& effort_name,
                              const std::string& scales) {
    const gguf::TypeId type = type_from(type_arg);
    auto x = floats(array);
    if (!x) throw py::type_error("quantize: expected an array of numbers");
    if (x.ndim() < 1) throw py::value_error("quantize: expected at least one dimension (the rows are along the last)");
    const int64_t row = x.shape(x.ndim() - 1);
    const int64_t rows = row ? static_cast<int64_t>(x.size()) / row : 0;
    const auto effort = quant::effort_from_name(effort_name);
    if (!effort) throw py::value_error("quantize: effort must be fast, default or best, not '" + effort_name + "'");
    const quant::ScaleFit scale_fit = scale_fit_from("quantize", scales);
    py::array_t<float, py::array::c_style | py::array::forcecast> w;
    std::span<const float> weights;
    if (!importance.is_none()) {
        w = floats(importance);
        if (!w || w.ndim() != 1 || w.shape(0) != row)
            throw py::value_error("quantize: importance must hold one weight per column (" + std::to_string(row) + ")");
        weights = {w.data(), static_cast<size_t>(row)};
    }
    const uint64_t row_bytes = quant::row_bytes(type, row);  // throws for a row that is not whole blocks
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(row_bytes * static_cast<uint64_t>(rows)));
    const float* src = x.data();
    uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        quant::for_each_row_range(rows, quant::thread_count(threads), [&](int64_t begin, int64_t end) {
            quant::quantize(type, {src + begin * row, static_cast<size_t>((end - begin) * row)}, row, weights,
                            {dst + begin * row_bytes, static_cast<size_t>((end - begin) * row_bytes)}, begin, *effort, scale_fit);
        });
    }
    return out;
}

py::array_t<float> dequantize(const py::buffer& buffer, const py::object& type_arg, const py::object& shape_arg, int threads) {
    const gguf::TypeId type = type_from(type_arg);
    const py::buffer_info info = buffer.request();
    py::ssize_t stride = info.itemsize;  // C order: each dimension's stride the product of those after it
    for (py::ssize_t d = info.ndim; d-- > 0; stride *= info.shape[static_cast<size_t>(d)])
        if (info.shape[static_cast<size_t>(d)] > 1 && info.strides[static_cast<size_t>(d)] != stride)
            throw py::value_error("dequantize: the buffer is not contiguous (np.ascontiguousarray makes it so)");
    std::vector<py::ssize_t> shape = shape_arg.cast<std::vector<py::ssize_t>>();
    if (shape.empty()) throw py::value_error("dequantize: the shape needs at least one dimension (the rows are along the last)");
    int64_t n = 1;
    for (py::ssize_t d : shape) {
        if (d < 0) throw py::value_error("dequantize: negative dimension");
        n *= d;
    }
    const int64_t row = shape.back();
    const int64_t rows = row ? n / row : 0;
    const uint64_t need = quant::row_bytes(type, row) * static_cast<uint64_t>(rows);
    const uint64_t have = static_cast<uint64_t>(info.size) * static_cast<uint64_t>(info.itemsize);
    if (have != need)
        throw py::value_error("dequantize: " + std::to_string(rows) + " rows of " + std::to_string(row) + " " + std::string(gguf::type_info(type).name) +
                              " values take " + std::to_string(need) + " bytes, the buffer holds " + std::to_string(have));
    if (!kernels::can_dequantize(type)) throw py::value_error("dequantize: type " + std::string(gguf::type_info(type).name) + " cannot be dequantized");
    py::array_t<float> out(shape);
    dequantize_rows(type, static_cast<const uint8_t*>(info.ptr), rows, row, out.mutable_data(), threads);
    return out;
}

// gguf check's findings on `path`, as `gguf check --json` lists them (every one).
py::dict check(const std::string& path, bool data, int threads) {
    kernels::ModelCheck c;
    {
        py::gil_scoped_release release;
        gguf::FaultLog faults;
        const gguf::Model m = gguf::Model::open(path, faults);
        c = kernels::check_model(m, faults, data, threads);
    }
    py::list findings;
    for (const gguf::Finding& f : c.findings) {
        py::dict d;
        d["severity"] = f.severity == gguf::Finding::Severity::Error ? "error" : "warning";
        d["where"] = f.where;
        d["message"] = f.message;
        findings.append(d);
    }
    py::dict out;
    out["file"] = path;
    out["data_checked"] = data;
    out["errors"] = c.errors;
    out["warnings"] = c.warnings;
    out["findings"] = findings;
    out["truncated"] = c.unlisted > 0;
    return out;
}

// gguf requant: src to dst as the mix `type` says, with llama.cpp's per-tensor rules.
py::dict requant(const std::string& src, const std::string& dst, const std::string& type, const py::object& imatrix, int threads,
                 const std::string& effort_name, bool allow_requantize, const py::object& progress, const std::string& scales, bool direct_io) {
    gguf::requant::RunOptions o;
    o.plan.target = gguf::requant::find_target(type);
    if (!o.plan.target) throw py::value_error("requant: unknown type '" + type + "' (gguf requant --list shows them)");
    const auto effort = quant::effort_from_name(effort_name);
    if (!effort) throw py::value_error("requant: effort must be fast, default or best, not '" + effort_name + "'");
    o.effort = *effort;
    o.scale_fit = scale_fit_from("requant", scales);
    o.direct_io = direct_io;
    if (!imatrix.is_none()) {
        o.imatrix = py::str(imatrix).cast<std::string>();
        o.plan.has_imatrix = true;
    }
    o.allow_requantize = allow_requantize;
    o.threads = quant::thread_count(threads);
    gguf::requant::Report r;
    {
        py::gil_scoped_release release;
        std::function<void(const gguf::requant::Progress&)> report;
        if (!progress.is_none())
            report = [&progress](const gguf::requant::Progress& p) {
                py::gil_scoped_acquire hold;
                progress(p.index, p.count, std::string(p.tensor), p.done_bytes, p.total_bytes);
            };
        r = gguf::requant::requantize(src, dst, o, report);
    }
    py::dict out;
    out["tensors"] = r.tensors;
    out["converted"] = r.converted;
    out["fallbacks"] = r.fallbacks;
    out["bytes_in"] = r.bytes_in;
    out["bytes_out"] = r.bytes_out;
    out["bits_per_weight_in"] = r.bits_per_weight_in();
    out["bits_per_weight_out"] = r.bits_per_weight_out();
    out["warnings"] = r.warnings;
    py::list outputs;
    for (const auto& p : r.outputs) outputs.append(p.string());
    out["outputs"] = outputs;
    return out;
}

// A round trip's figures as `gguf error --json` writes them (spec/check-json.md).
void put_stats(py::dict& d, const kernels::ErrorStats& s) {
    d["elements"] = s.values;
    d["rmse"] = s.rmse();
    d["weighted_rmse"] = std::isnan(s.weighted_rmse()) ? py::object(py::none()) : py::object(py::float_(s.weighted_rmse()));
    d["max_abs_error"] = s.max_abs_error;
    d["snr_db"] = std::isinf(s.snr_db()) ? py::object(py::str("inf")) : py::object(py::float_(s.snr_db()));
}

// gguf error: every tensor of `path` round-tripped through `type`.
py::dict error(const std::string& path, const py::object& type_arg, const py::object& imatrix_path, const py::object& tensors, int threads) {
    const gguf::TypeId target = type_from(type_arg);
    if (!quant::can_quantize(target)) throw py::value_error("error: ggufkit cannot quantize to " + std::string(gguf::type_info(target).name));
    std::optional<std::regex> filter;
    if (!tensors.is_none()) {
        try {
            filter.emplace(tensors.cast<std::string>());
        } catch (const std::regex_error& e) {
            throw py::value_error("error: invalid regular expression '" + tensors.cast<std::string>() + "': " + e.what());
        }
    }
    std::optional<std::string> imatrix_file;
    if (!imatrix_path.is_none()) imatrix_file = py::str(imatrix_path).cast<std::string>();
    gguf::requant::ErrorReport r;
    std::optional<gguf::Model> model;
    {
        py::gil_scoped_release release;
        model.emplace(gguf::Model::open(path));
        std::optional<quant::ImportanceMatrix> imatrix;
        if (imatrix_file) imatrix = quant::ImportanceMatrix::load(*imatrix_file);
        r = gguf::requant::measure_error(*model, target, imatrix ? &*imatrix : nullptr, filter, quant::thread_count(threads));
    }
    py::list rows;
    for (const gguf::requant::ErrorRow& row : r.rows) {
        py::dict d;
        d["name"] = std::string(row.tensor->info->name);
        d["source_type"] = std::string(gguf::type_info(row.tensor->info->type).name);
        py::list shape;
        for (uint64_t dim : row.tensor->info->dims()) shape.append(dim);
        d["shape"] = shape;
        put_stats(d, row.stats);
        d["imatrix"] = row.weighted;
        rows.append(d);
    }
    py::list skipped;
    for (const gguf::requant::ErrorSkip& s : r.skipped) {
        py::dict d;
        d["name"] = s.name;
        d["reason"] = s.reason;
        skipped.append(d);
    }
    py::dict total;
    put_stats(total, r.total);
    py::dict out;
    out["file"] = path;
    out["type"] = std::string(gguf::type_info(target).name);
    out["bits_per_weight"] = gguf::bits_per_weight(target);
    out["imatrix"] = imatrix_file ? py::object(py::str(*imatrix_file)) : py::object(py::none());
    out["tensors"] = rows;
    out["skipped"] = skipped;
    out["total"] = total;
    return out;
}

// ---- writing ------------------------------------------------------------------------------

// A value type named as `gguf inspect` names it: "u8" .. "f64", "bool", "str".
gguf::ValueType value_type_named(const std::string& name) {
    for (uint32_t t = 0; t < gguf::kValueTypeCount; ++t)
        if (gguf::value_type_name(static_cast<gguf::ValueType>(t)) == name && t != static_cast<uint32_t>(gguf::ValueType::Array))
            return static_cast<gguf::ValueType>(t);
    throw py::value_error("unknown value type '" + name + "' (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, str, or arr[...] of one)");
}

// A Python integer as the integer type t, refusing values out of its range.
gguf::OwnedValue integer_as(gguf::ValueType t, const py::handle& v, const std::string& key) {
    using T = gguf::ValueType;
    const py::int_ i = py::reinterpret_borrow<py::object>(v);
    const bool negative = i < py::int_(0);
    auto range = [&](bool ok) {
        if (!ok) throw py::value_error("key '" + key + "': " + py::str(v).cast<std::string>() + " is out of range for " + std::string(gguf::value_type_name(t)));
    };
    if (t == T::U8 || t == T::U16 || t == T::U32 || t == T::U64) {
        range(!negative && i <= py::int_(t == T::U8 ? UINT8_MAX : t == T::U16 ? UINT16_MAX : t == T::U32 ? UINT32_MAX : UINT64_MAX));
        const auto u = i.cast<uint64_t>();
        return t == T::U8 ? gguf::OwnedValue::u8(static_cast<uint8_t>(u)) : t == T::U16 ? gguf::OwnedValue::u16(static_cast<uint16_t>(u))
             : t == T::U32 ? gguf::OwnedValue::u32(static_cast<uint32_t>(u)) : gguf::OwnedValue::u64(u);
    }
    const int64_t lo = t == T::I8 ? INT8_MIN : t == T::I16 ? INT16_MIN : t == T::I32 ? INT32_MIN : INT64_MIN;
    const int64_t hi = t == T::I8 ? INT8_MAX : t == T::I16 ? INT16_MAX : t == T::I32 ? INT32_MAX : INT64_MAX;
    range(i >= py::int_(lo) && i <= py::int_(hi));
    const auto s = i.cast<int64_t>();
    return t == T::I8 ? gguf::OwnedValue::i8(static_cast<int8_t>(s)) : t == T::I16 ? gguf::OwnedValue::i16(static_cast<int16_t>(s))
         : t == T::I32 ? gguf::OwnedValue::i32(static_cast<int32_t>(s)) : gguf::OwnedValue::i64(s);
}

gguf::OwnedValue scalar_as(gguf::ValueType t, const py::handle& v, const std::string& key) {
    using T = gguf::ValueType;
    auto wrong = [&](const char* what) {
        return py::type_error("key '" + key + "': a " + std::string(gguf::value_type_name(t)) + " needs " + what + ", not " +
                              py::str(py::type::of(v).attr("__name__")).cast<std::string>());
    };
    switch (t) {
    case T::Bool:
        if (!py::isinstance<py::bool_>(v) && !(py::hasattr(v, "dtype") && py::str(v.attr("dtype")).cast<std::string>() == "bool")) throw wrong("a bool");
        return gguf::OwnedValue::boolean(v.cast<bool>());
    case T::String: {
        if (!py::isinstance<py::str>(v)) throw wrong("a str");
        // surrogateescape: the bytes a string read from a file had, valid UTF-8 or not
        PyObject* b = PyUnicode_AsEncodedString(v.ptr(), "utf-8", "surrogateescape");
        if (!b) throw py::error_already_set();
        return gguf::OwnedValue::string(py::reinterpret_steal<py::bytes>(b).cast<std::string>());
    }
    case T::F32:
    case T::F64:
        if (py::isinstance<py::str>(v) || py::isinstance<py::bool_>(v)) throw wrong("a number");
        return t == T::F32 ? gguf::OwnedValue::f32(v.cast<float>()) : gguf::OwnedValue::f64(v.cast<double>());
    default: {
        if (py::isinstance<py::bool_>(v) || py::isinstance<py::str>(v) || py::isinstance<py::float_>(v)) throw wrong("an integer");
        py::object as_int = py::module_::import("operator").attr("index")(v);  // numpy integers too; 2.5 is refused
        return integer_as(t, as_int, key);
    }
    }
}

// The type a Python value gets without one named: bool, str, float (f32), int (u32 when it
// fits, else i64, else u64), and arrays of those (ints as i32, as llama.cpp's token types);
// numpy arrays and scalars keep their dtype.
std::string inferred_type(const py::handle& v);

std::string numpy_type_name(const py::dtype& d) {
    const char kind = d.kind();
    const auto size = d.itemsize();
    if (kind == 'b') return "bool";
    if (kind == 'f' && (size == 4 || size == 8)) return size == 4 ? "f32" : "f64";
    if ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8))
        return std::string(1, kind == 'i' ? 'i' : 'u') + std::to_string(8 * size);
    if (kind == 'U') return "str";
    throw py::type_error("no GGUF value type for numpy dtype " + py::str(py::handle(d)).cast<std::string>());
}

std::string inferred_type(const py::handle& v) {
    // A numpy scalar first: np.float64 is also a Python float, np.bool_ is not a bool.
    if (py::hasattr(v, "dtype") && !py::isinstance<py::array>(v) && !py::isinstance<py::sequence>(v))
        return numpy_type_name(py::dtype::from_args(v.attr("dtype")));
    if (py::isinstance<py::bool_>(v)) return "bool";
    if (py::isinstance<py::str>(v)) return "str";
    if (py::isinstance<py::float_>(v)) return "f32";
    if (py::isinstance<py::int_>(v)) {
        const py::int_ i = py::reinterpret_borrow<py::object>(v);
        if (i >= py::int_(0) && i <= py::int_(UINT32_MAX)) return "u32";
        if (i >= py::int_(INT64_MIN) && i <= py::int_(INT64_MAX)) return "i64";
        return "u64";
    }
    if (py::isinstance<py::array>(v)) {
        const py::array a = py::reinterpret_borrow<py::array>(v);
        if (a.ndim() == 0) return numpy_type_name(a.dtype());
        return "arr[" + numpy_type_name(a.dtype()) + "]";
    }
    if (py::isinstance<StringArray>(v)) return "arr[str]";
    if (py::isinstance<py::sequence>(v)) {
        const py::sequence seq = py::reinterpret_borrow<py::sequence>(v);
        if (seq.size() == 0) throw py::value_error("an empty list needs a type (type=\"arr[u32]\", ...)");
        std::string first = inferred_type(seq[0]);
        for (const py::handle item : seq) {
            std::string t = inferred_type(item);
            if (t == first) continue;
            if ((t == "u32" || t == "i64") && (first == "u32" || first == "i64")) continue;  // ints of both signs
            if (t.starts_with("arr[") && first.starts_with("arr[")) continue;                 // arrays of arrays differ per element
            throw py::type_error("a list of mixed types (" + first + " and " + t + ") needs a type");
        }
        if (first == "u32" || first == "i64") first = "i32";
        return "arr[" + first + "]";
    }
    throw py::type_error("no GGUF value type for " + py::str(py::type::of(v).attr("__name__")).cast<std::string>());
}

gguf::OwnedValue value_as(const std::string& type, const py::handle& v, const std::string& key) {
    if (!type.starts_with("arr[")) return scalar_as(value_type_named(type), v, key);
    if (!type.ends_with("]")) throw py::value_error("unknown value type '" + type + "'");
    const std::string inner = type.substr(4, type.size() - 5);
    if (py::isinstance<py::str>(v) || !py::isinstance<py::iterable>(v)) throw py::type_error("key '" + key + "': " + type + " needs a list or array");
    std::vector<gguf::OwnedValue> items;
    if (py::isinstance<StringArray>(v)) {
        for (const py::handle item : v.cast<StringArray&>().to_list()) items.push_back(value_as(inner, item, key));
    } else {
        for (const py::handle item : py::reinterpret_borrow<py::iterable>(v))
            items.push_back(value_as(inner, item, key));
    }
    const gguf::ValueType elem = inner.starts_with("arr[") ? gguf::ValueType::Array : value_type_named(inner);
    return gguf::OwnedValue::array(elem, std::move(items));
}

class Writer {
public:
    void set(const std::string& key, const py::object& value, const py::object& type) {
        const std::string t = type.is_none() ? inferred_type(value) : type.cast<std::string>();
        w_.set(key, value_as(t, value, key));
    }
    void remove(const std::string& key) { w_.remove(key); }
    bool contains(const std::string& key) const { return w_.find(key) != nullptr; }

    // `data`: the tensor's bytes (kept alive here until written); shape in numpy order.
    void add_tensor(const std::string& name, const py::array& data, const py::object& type_arg, const std::vector<uint64_t>& shape) {
        const gguf::TypeId type = type_from(type_arg);
        if (!(data.flags() & py::array::c_style)) throw py::value_error("add_tensor: the bytes must be contiguous");
        std::vector<uint64_t> ne(shape.rbegin(), shape.rend());
        uint64_t n = 1;
        for (uint64_t d : ne) n *= d;
        const uint64_t need = gguf::tensor_bytes(type, n);
        if (static_cast<uint64_t>(data.nbytes()) != need)
            throw py::value_error("add_tensor '" + name + "': " + std::to_string(n) + " " + std::string(gguf::type_info(type).name) + " values take " +
                                  std::to_string(need) + " bytes, not " + std::to_string(data.nbytes()));
        w_.add_tensor(name, type, ne, std::span<const uint8_t>(static_cast<const uint8_t*>(data.data()), static_cast<size_t>(data.nbytes())));
        keep_.push_back(data);
    }
    // Another open file's tensor as it is, copied file to file when written.
    void add_tensor_from(const Tensor& t, const py::object& name) {
        const gguf::File& part = t.owner()->model.parts()[t.entry().part];
        // A plain file's bytes go file to file. A .gguf.zst's or a URL's are handed over as
        // they are mapped now: the copy from the file would release those pages after
        // writing, under the views Python may hold.
        if (name.is_none() && !part.compressed() && !part.transfer()) {
            w_.add_tensor(part, *t.entry().info);
        } else {  // the same type, shape and bytes (renamed where asked)
            const gguf::TensorInfo& info = *t.entry().info;
            const auto bytes = t.owner()->model.tensor_data(t.entry());
            w_.add_tensor(name.is_none() ? std::string(info.name) : name.cast<std::string>(), info.type,
                          std::vector<uint64_t>(info.dims().begin(), info.dims().end()), bytes);
        }
        sources_.push_back(t.owner());
    }
    // Known keys set with another value type than llama.cpp reads: gguf check's findings.
    std::vector<std::string> key_type_errors() const {
        std::vector<uint8_t> header = w_.header();
        const uint32_t align = w_.alignment();
        header.resize((header.size() + align - 1) / align * align, 0);
        gguf::FaultLog faults;  // the header alone: every tensor's data lies past its end
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(header, "(the file being written)", faults));
        const gguf::Model m = gguf::Model::from_parts(std::move(parts));
        std::vector<std::string> out;
        for (const gguf::Finding& f : gguf::check_metadata(m))
            if (f.wrong_type) out.push_back(f.where + ": " + f.message);
        return out;
    }
    // A key of another open file, with its type and value as they are.
    void set_from(const OpenedPtr& file, const std::string& key, const py::object& name) {
        if (!file) throw py::value_error("add_from: the file is closed");
        const gguf::KeyValue* kv = file->model.find(key);
        if (!kv) throw py::key_error(key);
        w_.set(name.is_none() ? key : name.cast<std::string>(), gguf::OwnedValue::from(kv->value));
    }
    void write(const std::string& path, bool check) {
        if (check) {
            const auto errors = key_type_errors();
            if (!errors.empty()) {
                std::string message = path + ": not written: ";
                for (size_t i = 0; i < errors.size(); ++i) message += (i ? "; " : "") + errors[i];
                throw py::value_error(message + " (write(check=False) writes it anyway)");
            }
        }
        py::gil_scoped_release release;
        w_.write(path);
    }
    size_t tensor_count() const { return w_.tensor_count(); }

private:
    gguf::Writer w_;
    std::vector<py::object> keep_;
    std::vector<OpenedPtr> sources_;
};

}  // namespace

PYBIND11_MODULE(_ggufkit, m) {
    m.doc() = "ggufkit's C++ core; use the ggufkit package.";
    // gguf::Error (bad input, naming the file and offset) as ggufkit.Error, a ValueError.
    py::register_exception<gguf::Error>(m, "Error", PyExc_ValueError);

    py::class_<Opened, OpenedPtr>(m, "_Opened");

    py::class_<TensorType>(m, "TensorType")
        .def_readonly("name", &TensorType::name)
        .def_readonly("id", &TensorType::id)
        .def_readonly("block_size", &TensorType::block_size)
        .def_readonly("type_size", &TensorType::type_size)
        .def_readonly("quantized", &TensorType::quantized)
        .def("__repr__", [](const TensorType& t) { return "TensorType('" + t.name + "', " + std::to_string(t.id) + ")"; })
        .def("__str__", [](const TensorType& t) { return t.name; })
        .def("__eq__", [](const TensorType& a, const py::object& b) {
            if (py::isinstance<TensorType>(b)) return a.id == b.cast<TensorType>().id;
            if (py::isinstance<py::str>(b)) return a.name == b.cast<std::string>();
            if (py::isinstance<py::int_>(b)) return py::int_(a.id).equal(b);
            return false;
        })
        .def("__hash__", [](const TensorType& t) { return t.id; });

    py::class_<StringArray, std::shared_ptr<StringArray>>(m, "StringArray")
        .def("__len__", &StringArray::size)
        .def("__getitem__", &StringArray::at)
        .def("__getitem__", &StringArray::slice)
        .def("tolist", &StringArray::to_list)
        .def("__repr__", [](const StringArray& a) { return "<ggufkit.StringArray of " + std::to_string(a.size()) + " strings>"; });

    py::class_<Metadata>(m, "Metadata")
        .def("__len__", &Metadata::size)
        .def("__contains__", &Metadata::contains)
        .def("__getitem__", &Metadata::get)
        .def("keys", &Metadata::keys)
        .def("type_of", &Metadata::type_of)
        .def("offset_of", &Metadata::offset_of);

    py::class_<Tensor>(m, "Tensor")
        .def_property_readonly("name", &Tensor::name)
        .def_property_readonly("type", &Tensor::type)
        .def_property_readonly("shape", &Tensor::shape)
        .def_property_readonly("n_elements", &Tensor::n_elements)
        .def_property_readonly("nbytes", &Tensor::nbytes)
        .def_property_readonly("offset", &Tensor::offset)
        .def_property_readonly("part", &Tensor::part_index)
        .def("_info", &Tensor::info)
        .def("raw", &Tensor::raw)
        .def("numpy", &Tensor::numpy, py::arg("dtype") = py::none(), py::arg("threads") = 0);

    m.def("_open", [](const std::string& path) {
        OpenedPtr owner;
        {
            py::gil_scoped_release release;
            owner = std::make_shared<Opened>(gguf::Model::open(path));
        }
        py::dict tensors;
        for (const gguf::Model::Tensor& t : owner->model.tensors()) tensors[py::str(std::string(t.info->name))] = Tensor(owner, &t);
        const gguf::File& first = owner->model.first();
        py::list parts;
        for (const gguf::File& f : owner->model.parts()) parts.append(f.path());
        return py::make_tuple(owner, first.version(), first.alignment(), Metadata(owner), tensors, parts);
    });
    py::class_<Writer>(m, "_Writer")
        .def(py::init<>())
        .def("set", &Writer::set)
        .def("remove", &Writer::remove)
        .def("__contains__", &Writer::contains)
        .def("add_tensor", &Writer::add_tensor)
        .def("add_tensor_from", &Writer::add_tensor_from)
        .def("key_type_errors", &Writer::key_type_errors)
        .def("set_from", &Writer::set_from)
        .def("write", &Writer::write)
        .def_property_readonly("tensor_count", &Writer::tensor_count);

    m.def("_quantize", &quantize);
    m.def("_check", &check);
    m.def("_error", &error);
    m.def("_requant", &requant);
    m.def("_dequantize", &dequantize);
    m.def("_type", [](const py::object& t) { return describe(type_from(t)); });
    m.def("_types", [] {
        py::list out;
        for (uint32_t id = 0; id < gguf::kTypeCount; ++id) {
            const gguf::TypeInfo& info = gguf::type_info(static_cast<gguf::TypeId>(id));
            if (!info.retired) out.append(describe(static_cast<gguf::TypeId>(id)));
        }
        return out;
    });
}
