// The routed experts of an MoE layer as two fused ops over the permuted token buffer, so that a
// layer's experts run as one grouped GEMM (all experts' tiles shared among the threads) instead of
// a slice, three matmuls, an activation and a concatenation per expert.
//
// Letters: R rows grouped by expert (expert e owns rows offsets[e] .. offsets[e] + counts[e]),
// d hidden, I expert width, E experts given, S tokens, K experts per token, A = S·K assignments.
#pragma once
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

// y_e = down_e( silu(gate_e x_e) ⊙ up_e x_e ) for every expert e on its own rows x_e.
// x [R, d]; counts [E] with Σ counts = R; gate[e], up[e] [I, d]; down[e] [d, I]. Returns [R, d].
// Every expert given must have counts[e] > 0 (pass only the experts that received rows).
Tensor expert_swiglu(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& gate,
                     const std::vector<Tensor>& up, const std::vector<Tensor>& down);

// Un-permute and weight: y[s] = Σ_j w[s, j] · yp[row of slot s·K + j], the routed experts' outputs
// combined per token. yp [A, d] (an expert's output per assignment); w [S, K] routing weights;
// slot [A] (i64): the flat assignment index s·K + j that row r holds, a permutation of 0 .. A−1.
// Each token sums its K terms in slot order, so results do not depend on the thread count.
Tensor moe_combine(const Tensor& yp, const Tensor& w, const Tensor& slot);

}  // namespace mlamoe
