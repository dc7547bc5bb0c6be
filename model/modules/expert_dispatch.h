// The hook through which expert parallelism plugs into the MoE layer (parallel/README.md "Layering": `model` knows
// nothing of MPI; `parallel` supplies the communicating implementation). A dispatcher moves the
// permuted token rows to the ranks that hold their experts and brings the expert outputs back,
// in three phases each way (CONTRIBUTING.md "Code habits" item 7), named as Megatron-Core's MoE token dispatchers name
// them:
//
//   dispatch_preprocess   (local)          counts_E -> the plan's send side; the rows to send
//   dispatch_all_to_all   (communication)  counts, then rows, to the experts' ranks
//   dispatch_postprocess  (local)          received rows regrouped source-major -> expert-major
//   ... the local experts run on rows_RD ...
//   combine_preprocess    (local)          expert outputs regrouped expert-major -> source-major
//   combine_all_to_all    (communication)  the reverse row exchange
//   combine_postprocess   (local)          nothing left here: the caller un-permutes and weights
//
// No communication hides in a local phase, by construction: the local phases are defined here in
// model/, which cannot reach a Communicator (model/ never includes parallel/), and only the two
// *_all_to_all functions are virtual. An implementation (EpDispatcher over MPI today, the same
// class over an NCCL Communicator later) supplies the communication and nothing else.
//
// Overlap (parallel/README.md "Overlap"): each *_all_to_all starts its row exchange and returns it
// in flight (RowsInFlight); the caller computes what does not need the rows, then waits. The MoE
// layer runs its shared experts (they need only the layer input) while the dispatched rows
// travel. In the backward, the exchange of the combine's gradients is started as soon as they
// exist and waited for once nothing else is ready (Node::BackwardOrder): the router's and the
// shared experts' backward run meanwhile. On a GPU with NCCL the exchange runs on the
// communicator's stream beside those kernels; on MPI it progresses as the library allows.
// Overlapping one micro-batch's exchange with another micro-batch's attention (DeepSeek-V3's
// DualPipe) is not done. The counts exchange at the start of dispatch_all_to_all is a host
// synchronisation (the row split sizes must be known on the host), which is why it sits in the
// communication phase and not in the pre-processing.
//
// Both row exchanges are autograd ops: the backward of the dispatch exchange is the combine
// exchange of the gradients and vice versa; the regroupings are index_select ops.
//
// Dimension letters: the MoE legend in model/modules/moe.h (N assignments on this rank, R rows
// received for this rank's experts, D hidden, E routed experts, E_local = E / ep per rank).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

// What travels from dispatch to combine. Global expert g lives on rank g / E_local as its local
// expert g % E_local, so per-expert arrays indexed r·E_local + e are indexed by (rank, local expert).
struct DispatchPlan {
  int64_t ep = 1;             // ranks in the ep group
  int64_t local_experts = 0;  // E_local = E / ep
  // ---- send side (dispatch_preprocess) ----
  std::vector<int64_t> send_counts;  // [ep·E_local] = counts_E: rows to (rank r, local expert e) at r·E_local + e
  std::vector<int64_t> send_rows;    // [ep] rows to each rank (Σ over its experts); Σ = N
  // ---- receive side (dispatch_all_to_all) ----
  std::vector<int64_t> recv_counts;  // [ep·E_local] rows from (source rank s, local expert e) at s·E_local + e
  std::vector<int64_t> recv_rows;    // [ep] rows from each source rank; Σ = R
  // ---- regrouping (dispatch_postprocess); when ep = 1 the two orders coincide and these stay empty ----
  std::vector<int64_t> recv_offsets;  // [ep·E_local] first source-major row of block (s, e)
  std::vector<int64_t> local_counts;  // [E_local] rows per local expert (Σ over sources); Σ = R
  Tensor to_expert_major;             // [R] i64: the source-major row of each expert-major row
  Tensor to_source_major;             // [R] i64: its inverse
};

// A row exchange that has been started: wait() completes it and returns the rows that arrived
// (an autograd tensor). Waiting twice, or on an empty one, is an error; an exchange never waited
// for is completed by the destructor (every rank must finish what it started).
class RowsInFlight {
 public:
  RowsInFlight() = default;
  explicit RowsInFlight(Tensor arrived);                // an exchange that is already complete
  explicit RowsInFlight(std::function<Tensor()> wait);  // completed by `wait`
  RowsInFlight(RowsInFlight&& o) noexcept;
  RowsInFlight& operator=(RowsInFlight&& o);  // completes this one's exchange first
  ~RowsInFlight();
  Tensor wait();

 private:
  Tensor arrived_;
  std::function<Tensor()> wait_;
};

struct Dispatched {
  Tensor rows;        // [R, D] grouped by local expert (plan.local_counts rows each)
  DispatchPlan plan;  // what combine needs to route the outputs back
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;
  virtual int64_t ep_size() const = 0;
  virtual int64_t ep_rank() const = 0;

  // ---- dispatch ----
  // (local) xp_ND [N, D] grouped by global expert, counts_E [E] rows per global expert: fills the
  // plan's send side and returns the rows to send ([N, D]: xp_ND itself, already grouped by
  // destination rank since each rank holds a contiguous block of experts).
  Tensor dispatch_preprocess(const Tensor& xp_ND, const std::vector<int64_t>& counts_E, DispatchPlan& plan) const;
  // (communication) The per-(rank, local expert) counts (blocking), then the rows: fills the
  // plan's receive side and returns the row exchange in flight; its wait() gives the received
  // rows [R, D] source-major (by source rank, then local expert).
  virtual RowsInFlight dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) = 0;
  // (local) source-major -> expert-major: fills the plan's regrouping; returns rows_RD [R, D].
  Tensor dispatch_postprocess(const Tensor& recv_RD, DispatchPlan& plan) const;

  // ---- combine ----
  // (local) y_RD [R, D] (the experts' outputs, in dispatch_postprocess's order) -> source-major.
  Tensor combine_preprocess(const Tensor& y_RD, const DispatchPlan& plan) const;
  // (communication) The reverse row exchange, in flight: [R, D] source-major -> [N, D] in
  // xp_ND's order.
  virtual RowsInFlight combine_all_to_all(const Tensor& y_RD, const DispatchPlan& plan) = 0;
  // (local) Nothing to do: the caller's moe_combine un-permutes and weights (yp_ND returned as is).
  Tensor combine_postprocess(const Tensor& yp_ND, const DispatchPlan& plan) const;

  // Conveniences: the three phases in order, each exchange waited for at once.
  Dispatched dispatch(const Tensor& xp_ND, const std::vector<int64_t>& counts_E);
  Tensor combine(const Tensor& y_RD, const DispatchPlan& plan);
};

// One process holds every expert: both exchanges (and so dispatch and combine) are the identity.
class LocalDispatcher final : public ExpertDispatcher {
 public:
  int64_t ep_size() const override { return 1; }
  int64_t ep_rank() const override { return 0; }
  RowsInFlight dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) override;
  RowsInFlight combine_all_to_all(const Tensor& y_RD, const DispatchPlan&) override { return RowsInFlight(y_RD); }
};

}  // namespace mlamoe
