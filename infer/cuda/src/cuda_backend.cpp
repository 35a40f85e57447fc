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
        const kc::DeviceInfo device = kc::device_info();
        name_ = "CUDA: " + device.name;
        uint64_t needed = 0;
        for (const Model* model : models) needed += model->weight_bytes();
        if (needed > device.free_memory)
            throw std::runtime_error("infer: --gpu: the weights need " + std::to_string(needed >> 20) + " MiB, " + device.name + " has " +
                                     std::to_string(device.free_memory >> 20) + " MiB free");
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
                // The router stays on the CPU: its choice of experts is discrete, and f16
                // factors could change it.
                for (const auto* experts : {&l.gate_exps, &l.up_exps, &l.down_exps})
                    for (const Matrix& m : *experts) upload(m);
            }
            upload(model->output());
        }
    }

    std::string_view name() const override { return name_; }

    bool matmul(const Matrix& w, const float* x, int64_t n, float* y) override {
        const auto found = weights_.find(&w);
        if (found == weights_.end()) return false;  // the CPU's (the token embedding, a router)
        const auto in_bytes = static_cast<size_t>(n * w.cols) * sizeof(float), out_bytes = static_cast<size_t>(n * w.rows) * sizeof(float);
        if (x_.size() < in_bytes) x_ = kc::DeviceBuffer(in_bytes);
        if (y_.size() < out_bytes) y_ = kc::DeviceBuffer(out_bytes);
        x_.upload(x, in_bytes);
        if (n == 1)
            kc::matvec(w.type, found->second.data(), w.row_bytes, w.rows, w.cols, x_.as<float>(), y_.as<float>());
        else
            kc::matmul(w.type, found->second.data(), w.row_bytes, w.rows, w.cols, x_.as<float>(), n, y_.as<float>(), kc::MatmulMethod::Cublas);
        y_.download(y, out_bytes);  // synchronous: waits for the product
        return true;
    }

private:
    std::string name_;
    std::unordered_map<const Matrix*, kc::DeviceBuffer> weights_;
    kc::DeviceBuffer x_, y_;
};

}  // namespace

std::unique_ptr<MatmulBackend> make_cuda_backend(std::span<const Model* const> models) { return std::make_unique<CudaBackend>(models); }

}  // namespace infer
