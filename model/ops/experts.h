// The routed experts of an MoE layer as two fused ops over the permuted token buffer, so that a
// layer's experts run as one grouped GEMM (all experts' tiles shared among the threads) instead of
// a slice, three matmuls, an activation and a concatenation per expert.
//
// Letters: the MoE legend in model/modules/moe.h (R rows grouped by expert, D hidden, I expert
// width, S tokens, K experts per token, N = S·K assignments). E_given is the number of experts
// passed to expert_swiglu (those of this rank's E_local that received rows); expert e owns rows
// offsets[e] .. offsets[e] + counts[e] − 1.
#pragma once
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

// y_e = down_e( silu(gate_e x_e) ⊙ up_e x_e ) for every expert e on its own rows x_e.
// x [R, D]; counts [E_given] with Σ counts = R; gate[e], up[e] [I, D]; down[e] [D, I]. Returns [R, D].
// Every expert given must have counts[e] > 0 (pass only the experts that received rows).
Tensor expert_swiglu(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& gate,
                     const std::vector<Tensor>& up, const std::vector<Tensor>& down);

// Un-permute and weight: y[s] = Σ_j w[s, j] · yp[row of slot s·K + j], the routed experts' outputs
// combined per token. yp [N, D] (an expert's output per assignment); w [S, K] routing weights;
// slot [N] (i64, on the host or yp's device): the flat assignment index s·K + j that row r holds, a
// permutation of 0 .. N−1.
// Each token sums its K terms in slot order, so results do not depend on the thread count.
Tensor moe_combine(const Tensor& yp, const Tensor& w, const Tensor& slot);

}  // namespace mlamoe
