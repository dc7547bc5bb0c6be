// exp for float that the compiler vectorises (std::exp is a scalar libm call): Cody-Waite range
// reduction x = n·ln2 + r, a degree-6 polynomial for e^r on |r| ≤ ln2/2 (the Cephes expf
// coefficients), and 2^n built in the exponent bits. Max relative error about 2e-7 (a few ulp)
// over the range where e^x is a normal float; e^x for x below that (−inf included) is 0, x above
// 88 is taken as 88 (the callers pass x ≤ 0: scores minus their row maximum), and NaN stays NaN.
// For double, std::exp: the f64 path is the oracle, not a hot path.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace mlamoe {

inline float fast_exp(float x) {
  const float lo = -87.33654f, hi = 88.0f;
  float xc = x > lo ? (x < hi ? x : hi) : lo;  // NaN compares false: it takes lo here (no UB below)
  float n = std::nearbyint(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for an exact n·ln2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x != x ? x : (x < lo ? 0.0f : p * scale);  // NaN in, NaN out
}

inline double fast_exp(double x) { return std::exp(x); }

// 1/(1+e^−x), stable for large |x| (e^−|x| never overflows), vectorised for float.
template <class T>
inline T stable_sigmoid(T x) {
  T e = fast_exp(-std::abs(x));
  T r = T(1) / (T(1) + e);
  return x >= 0 ? r : e * r;
}

}  // namespace mlamoe
