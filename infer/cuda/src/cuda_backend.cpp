#include "infer/cuda.h"

#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "kernels/cuda.h"

namespace infer {

namespace {

namespace kc = kernels::cuda;

class CudaBackend final : public MatmulBackend {
public:
    explicit CudaBackend(std::span<const Model* const> models) {
        std::string why;
        if (!kc::available(&why)) throw std::runtime_error("infer: --gpu: " + why);
        name_ = "CUDA: " + kc::device_info().name;
        auto upload = [this](const Matrix& m) {
            if (weights_.count(&m)) return;
            const auto bytes = static_cast<size_t>(m.rows * m.row_bytes);
            kc::DeviceBuffer buffer(bytes);
            buffer.upload(m.data, bytes);
            weights_.emplace(&m, std::move(buffer));
        };
        for (const Model* model : models) {
            for (const Layer& l : model->layers()) {
                for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo}) upload(*m);
                if (!l.moe()) {
                    for (const Matrix* m : {&l.ffn_gate, &l.ffn_up, &l.ffn_down}) upload(*m);
                    continue;
                }
                upload(l.ffn_gate_inp);
                for (const auto* experts : {&l.gate_exps, &l.up_exps, &l.down_exps})
                    for (const Matrix& m : *experts) upload(m);
            }
            upload(model->output());
        }
    }

    std::string_view name() const override { return name_; }

    void matmul(const Matrix& w, const float* x, int64_t n, float* y) override {
        const auto found = weights_.find(&w);
        if (found == weights_.end()) throw std::invalid_argument("infer: the GPU backend has no copy of this weight matrix");
        const auto in_bytes = static_cast<size_t>(n * w.cols) * sizeof(float), out_bytes = static_cast<size_t>(n * w.rows) * sizeof(float);
        if (x_.size() < in_bytes) x_ = kc::DeviceBuffer(in_bytes);
        if (y_.size() < out_bytes) y_ = kc::DeviceBuffer(out_bytes);
        x_.upload(x, in_bytes);
        if (n == 1)
            kc::matvec(w.type, found->second.data(), w.row_bytes, w.rows, w.cols, x_.as<float>(), y_.as<float>());
        else
            kc::matmul(w.type, found->second.data(), w.row_bytes, w.rows, w.cols, x_.as<float>(), n, y_.as<float>(), kc::MatmulMethod::Cublas);
        y_.download(y, out_bytes);  // synchronous: waits for the product
    }

private:
    std::string name_;
    std::unordered_map<const Matrix*, kc::DeviceBuffer> weights_;
    kc::DeviceBuffer x_, y_;
};

}  // namespace

std::unique_ptr<MatmulBackend> make_cuda_backend(std::span<const Model* const> models) { return std::make_unique<CudaBackend>(models); }

}  // namespace infer
