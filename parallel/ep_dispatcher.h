// Expert parallelism (parallel/README.md "Parallelism semantics", EP): the ExpertDispatcher that sends each
// permuted token row to the rank of its ep group holding its expert and brings the expert outputs
// back. No token is dropped. Of the three phases each way (model/modules/expert_dispatch.h, which
// defines the local ones), this file supplies only the communication:
//   dispatch_all_to_all: the per-(rank, local expert) counts (an all-to-all of E_local counts per
//                        pair of ranks), then the rows (all-to-all-v, rows grouped by destination);
//   combine_all_to_all:  the reverse all-to-all-v of the expert outputs.
// The row exchange is an autograd op whose backward is the reverse exchange of the gradients; both
// are started and returned in flight, so the caller (and the backward) computes meanwhile.
//
// Dimension letters: the MoE legend in model/modules/moe.h.
#pragma once
#include <vector>

#include "model/modules/expert_dispatch.h"
#include "parallel/communicator.h"

namespace mlamoe {

// x [rows, D] with send_rows[r] consecutive rows for rank r -> [Σ recv_rows, D] in rank order.
// Differentiable: the gradient goes back by the same exchange with the counts swapped, started as
// soon as it is complete and waited for once the backward has nothing else ready (two nodes,
// Node::BackwardOrder). Collective over comm: every rank calls it with matching counts.
// Errors (Error): x not 2-d, send_rows not summing to x's rows; the communicator's own checks.
Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                       Communicator& comm);
// The same exchange, started (iall_to_all_v) and returned in flight: compute what does not need
// the rows, then wait(). overlap = false completes it before returning and gives its backward
// plain nodes (nothing overlaps; for measuring what the overlap hides).
RowsInFlight all_to_all_rows_start(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                                   Communicator& comm, bool overlap = true);

class EpDispatcher final : public ExpertDispatcher {
 public:
  // comm: the ep group (its rank is the ep rank); the E experts split into ep contiguous blocks.
  // overlap (parallel.overlap_moe_expert_parallel_comm): exchanges returned in flight, or complete.
  EpDispatcher(Communicator& comm, int64_t n_experts, bool overlap = true);
  int64_t ep_size() const override { return comm_.size(); }
  int64_t ep_rank() const override { return comm_.rank(); }
  RowsInFlight dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) override;
  RowsInFlight combine_all_to_all(const Tensor& y_RD, const DispatchPlan& plan) override;

 private:
  Communicator& comm_;
  int64_t n_experts_;
  bool overlap_;
  std::vector<int64_t> counts_per_rank_;  // [ep] = E_local: the count exchange's block sizes
};

}  // namespace mlamoe
