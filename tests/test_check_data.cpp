// kernels' data check (gguf check's data pass): non-finite floats and quantized blocks whose
// scales are not finite, the first one's position, the same on any number of threads.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "gguf/types.h"
#include "kernels/check.h"
#include "quant/quant.h"

using gguf::TypeId;
using kernels::check_data;
using quant::quantize;
using quant::row_bytes;

TEST_CASE("check_data finds non-finite floats and the first one's position") {
    std::vector<uint16_t> h(100, 0x3c00);
    h[42] = 0x7e00;  // NaN
    h[77] = 0xfc00;  // -Inf
    kernels::DataCheck c = check_data(TypeId::F16, {reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2});
    CHECK(c.bad == 2);
    CHECK(c.first == 42);
    CHECK(c.first_problem == "NaN");
    CHECK_FALSE(c.per_block);
    std::vector<float> f(10, 1.0f);
    f[9] = std::numeric_limits<float>::infinity();
    c = check_data(TypeId::F32, {reinterpret_cast<const uint8_t*>(f.data()), 40});
    CHECK(c.bad == 1);
    CHECK(c.first == 9);
    CHECK(c.first_problem == "Inf");
    const uint16_t bf[2] = {0x3f80, 0x7fc0};
    CHECK(check_data(TypeId::BF16, {reinterpret_cast<const uint8_t*>(bf), 4}).first == 1);
    const int32_t ints[2] = {-1, 0x7fffffff};
    CHECK(check_data(TypeId::I32, {reinterpret_cast<const uint8_t*>(ints), 8}).bad == 0);
}

TEST_CASE("check_data finds quantized blocks whose scales are not finite, in every scale encoding") {
    auto blocks_of = [](TypeId t, int n) {
        std::vector<float> x(static_cast<size_t>(gguf::type_info(t).block_size) * static_cast<size_t>(n));
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 0.1f;
        std::vector<float> w(x.size(), 1.0f);
        std::vector<uint8_t> q(row_bytes(t, static_cast<int64_t>(x.size())));
        quantize(t, x, static_cast<int64_t>(x.size()), w, q);
        return q;
    };
    struct Plant { TypeId type; size_t offset; std::vector<uint8_t> bytes; const char* problem; };
    const std::vector<Plant> plants = {
        {TypeId::Q4_0, 0, {0x00, 0x7c}, "f16 d is Inf"},
        {TypeId::Q4_1, 2, {0x01, 0x7e}, "f16 m is NaN"},
        {TypeId::Q4_K, 2, {0x00, 0xfc}, "f16 dmin is Inf"},
        {TypeId::Q2_K, 80, {0x00, 0x7e}, "f16 d is NaN"},
        {TypeId::Q6_K, 208, {0x00, 0x7c}, "f16 d is Inf"},
        {TypeId::TQ2_0, 64, {0x00, 0x7c}, "f16 d is Inf"},
        {TypeId::MXFP4, 0, {0xff}, "scale e is 0xff, NaN in E8M0"},
        {TypeId::NVFP4, 2, {0x7f}, "scale d[2] is 0x7f, NaN in E4M3"},
        {TypeId::IQ1_M, 48, {0x00, 0xf0, 0x00, 0xf0, 0x00, 0xf0, 0x00, 0xf0}, "f16 d is NaN"},  // top nibbles 0xffff
    };
    for (const Plant& p : plants) {
        CAPTURE(gguf::type_info(p.type).name);
        std::vector<uint8_t> q = blocks_of(p.type, 4);
        CHECK(check_data(p.type, q).bad == 0);
        const size_t block = gguf::type_info(p.type).type_size;
        for (size_t k = 0; k < p.bytes.size(); ++k) {
            uint8_t& b = q[2 * block + p.offset + k];
            b = p.type == TypeId::IQ1_M ? static_cast<uint8_t>((b & 0x0f) | p.bytes[k]) : p.bytes[k];
        }
        kernels::DataCheck c = check_data(p.type, q);
        CHECK(c.per_block);
        CHECK(c.bad == 1);
        CHECK(c.first == 2);
        CHECK(c.first_problem == p.problem);
    }
    CHECK_THROWS_AS(check_data(TypeId::Q4_0, std::vector<uint8_t>(17)), std::invalid_argument);
}

TEST_CASE("DataCheck::merge keeps the earliest finding, adds counts and keeps the unit") {
    kernels::DataCheck a, b;
    b.bad = 2;
    b.first = 7;
    b.first_problem = "f16 d is NaN";
    b.per_block = true;
    a.merge(b);
    CHECK(a.bad == 2);
    CHECK(a.first == 7);
    CHECK(a.per_block);
    kernels::DataCheck later;
    later.bad = 1;
    later.first = 9;
    later.first_problem = "later";
    a.merge(later);
    CHECK(a.bad == 3);
    CHECK(a.first == 7);
    CHECK(a.first_problem == "f16 d is NaN");
}

TEST_CASE("check_data on several threads finds the same as on one") {
    std::vector<uint16_t> h(10007, 0x3c00);
    h[5003] = 0x7c00;
    h[9000] = 0x7e00;
    h[777] = 0xfe00;
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2);
    for (int threads : {1, 2, 5}) {
        CAPTURE(threads);
        const kernels::DataCheck c = check_data(TypeId::F16, bytes, threads);
        CHECK(c.bad == 3);
        CHECK(c.first == 777);
        CHECK(c.first_problem == "NaN");
    }
}

