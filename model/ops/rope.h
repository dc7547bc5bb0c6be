// Rotary position embedding with interleaved pairs (model/README.md §2.3, layout 1, the official
// DeepSeek layout): the pair (x[2i], x[2i+1]) is rotated by angle p·ω_i, ω_i = θ^(−2i/d).
// The backward is the rotation by −p·ω_i. A key shared by all heads (MLA's k_pe) is passed with
// H = 1 and broadcast afterwards, so its gradient is the sum over heads, as the spec requires.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

struct RopeTables {
  Tensor cos;  // [T, d/2]
  Tensor sin;  // [T, d/2]
};

// Tables for positions start .. start+len-1. `inv_freq` overrides ω (e.g. YaRN-corrected
// frequencies, [d/2] values); empty means plain θ^(−2i/d).
RopeTables rope_tables(int64_t start, int64_t len, int64_t dim, double theta, DType dtype = DType::F32,
                       const std::vector<double>& inv_freq = {});

// x [B, T, H, d] (d even) rotated with tables for T positions -> [B, T, H, d]. Tables on another
// device than x (rope_tables makes them on the host) are copied to x's device for the call.
Tensor rope(const Tensor& x, const RopeTables& tables);

// One row of d = 2·half values rotated by one position's angles (cos, sin: that position's row of
// the tables): sign +1 rotates forward, −1 back (the backward). x and y may be the same row. X = T,
// or bf16 for a row kept as bf16 (read as T).
template <class T, class X = T>
inline void rope_row(const X* x, const T* cos, const T* sin, T* y, int64_t half, T sign) {
  for (int64_t i = 0; i < half; ++i) {
    T x0 = load_as<T>(x[2 * i]), x1 = load_as<T>(x[2 * i + 1]), si = sign * sin[i];
    y[2 * i] = x0 * cos[i] - x1 * si;
    y[2 * i + 1] = x0 * si + x1 * cos[i];
  }
}

}  // namespace mlamoe
