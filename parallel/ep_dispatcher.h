// Expert parallelism (DESIGN.md "Parallelism semantics", EP): the ExpertDispatcher that sends each
// permuted token row to the rank of its ep group holding its expert and brings the expert outputs
// back. No token is dropped. Each direction has three phases (STYLE.md item 7):
//   dispatch: (local) rows are already grouped by expert, hence by destination rank; per-expert
//             counts go first (all-to-all of N/ep counts per pair), then (communication) the rows
//             (all-to-all-v); (local) received rows are regrouped from source-major to expert-major.
//   combine:  (local) expert-major back to source-major; (communication) the reverse all-to-all-v;
//             (local) the caller un-permutes and weights.
// The row exchange is an autograd op whose backward is the reverse exchange of the gradients.
#pragma once
#include <vector>

#include "model/modules/expert_dispatch.h"
#include "parallel/communicator.h"

namespace mlamoe {

// x [S, d] with send_rows[r] consecutive rows for rank r -> [Σ recv_rows, d] in rank order.
// Differentiable: the gradient goes back by the same exchange with the counts swapped.
Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows, Communicator& comm);

class EpDispatcher final : public ExpertDispatcher {
 public:
  // comm: the ep group (its rank is the ep rank); the experts split into ep contiguous blocks.
  EpDispatcher(Communicator& comm, int64_t n_experts);
  int64_t ep_size() const override { return comm_.size(); }
  int64_t ep_rank() const override { return comm_.rank(); }
  Dispatched dispatch(const Tensor& xp, const std::vector<int64_t>& counts) override;
  Tensor combine(const Tensor& y, const Dispatched& d) override;

 private:
  Communicator& comm_;
  int64_t n_experts_;
};

}  // namespace mlamoe
