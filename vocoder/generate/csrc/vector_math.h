// Vector math shared by the CPU kernels (wavenet_step.cpp, student_forward.cpp): 16-float vectors in GCC's vector
// extension (one AVX-512 register, or two AVX2 ones as GCC lowers them), unaligned loads and stores, and the gated
// activation from a polynomial exp, so both kernels compute tanh(f) * sigmoid(g) identically.
#pragma once

#include <cstdint>
#include <cstring>

namespace {

constexpr int64_t V = 16;  // floats per vector

using vf = float __attribute__((vector_size(64)));
using vi = int32_t __attribute__((vector_size(64)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

inline vf splat(float x) { return x - vf{}; }  // x - 0 folds to a plain broadcast (x + 0 would not: -0 + 0 = +0)

// exp(x) for x in float range: Cephes' expf polynomial, about 2 ulp.
inline vf vexp(vf x) {
  x = x < -87.3f ? splat(-87.3f) : x;
  x = x > 88.3f ? splat(88.3f) : x;
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const vf n = (x * 1.44269504088896341f + magic) - magic;
  const vf g = x - n * 0.693359375f - n * -2.12194440e-4f;
  vf y = splat(1.9875691500e-4f);
  y = y * g + 1.3981999507e-3f;
  y = y * g + 8.3334519073e-3f;
  y = y * g + 4.1665795894e-2f;
  y = y * g + 1.6666665459e-1f;
  y = y * g + 5.0000001201e-1f;
  y = y * g * g + g + 1.0f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// tanh(f) * sigmoid(g), with tanh(f) = 2 sigmoid(2f) - 1: absolute error below 1e-6 (tested).
inline vf gate(vf f, vf g) { return (2.0f * vsigmoid(2.0f * f) - 1.0f) * vsigmoid(g); }

}  // namespace
