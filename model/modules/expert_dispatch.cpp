// The local phases of expert dispatch and combine (no communication: model/ cannot reach a
// Communicator) and the conveniences that run all three phases in order.
#include "model/modules/expert_dispatch.h"

#include <utility>

#include "model/ops/index.h"
#include "model/tensor/error.h"

namespace mlamoe {

Tensor ExpertDispatcher::dispatch_preprocess(const Tensor& xp_ND, const std::vector<int64_t>& counts_E,
                                             DispatchPlan& plan) const {
  int64_t ep = ep_size(), n_experts = static_cast<int64_t>(counts_E.size());
  MLAMOE_CHECK(n_experts % ep == 0, "dispatch_preprocess: ep = " << ep << " must divide the " << n_experts << " expert counts");
  MLAMOE_CHECK(xp_ND.dim() == 2, "dispatch_preprocess: expected rows xp [N, D], got " << xp_ND.describe());
  plan = DispatchPlan{};
  plan.ep = ep;
  plan.local_experts = n_experts / ep;
  plan.send_counts = counts_E;
  plan.send_rows.assign(ep, 0);
  int64_t total = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    MLAMOE_CHECK(counts_E[e] >= 0, "dispatch_preprocess: expert " << e << " has " << counts_E[e] << " rows");
    plan.send_rows[e / plan.local_experts] += counts_E[e];
    total += counts_E[e];
  }
  MLAMOE_CHECK(total == xp_ND.size(0),
               "dispatch_preprocess: expert counts add up to " << total << " rows, xp is " << xp_ND.describe());
  return xp_ND;  // grouped by global expert, hence by destination rank
}

Tensor ExpertDispatcher::dispatch_postprocess(const Tensor& recv_RD, DispatchPlan& plan) const {
  int64_t ep = plan.ep, e_local = plan.local_experts;
  MLAMOE_CHECK(static_cast<int64_t>(plan.recv_counts.size()) == ep * e_local,
               "dispatch_postprocess: the plan has " << plan.recv_counts.size() << " receive counts, expected ep·E_local = "
                                                     << ep * e_local << " (dispatch_all_to_all fills them)");
  if (ep == 1) {  // one source: source-major is expert-major
    plan.local_counts = plan.recv_counts;
    return recv_RD;
  }
  // Source-major (s, e) blocks -> expert-major: for each local expert, its rows from every source
  // in rank order.
  plan.recv_offsets.assign(ep * e_local, 0);
  int64_t offset = 0;
  for (int64_t s = 0; s < ep; ++s)
    for (int64_t e = 0; e < e_local; ++e)
      plan.recv_offsets[s * e_local + e] = offset, offset += plan.recv_counts[s * e_local + e];
  MLAMOE_CHECK(offset == recv_RD.size(0),
               "dispatch_postprocess: receive counts add up to " << offset << " rows, got " << recv_RD.describe());
  std::vector<int64_t> order_R, inverse_R(recv_RD.size(0));
  order_R.reserve(recv_RD.size(0));
  plan.local_counts.assign(e_local, 0);
  for (int64_t e = 0; e < e_local; ++e)
    for (int64_t s = 0; s < ep; ++s) {
      int64_t start = plan.recv_offsets[s * e_local + e];
      for (int64_t i = 0; i < plan.recv_counts[s * e_local + e]; ++i) {
        inverse_R[start + i] = static_cast<int64_t>(order_R.size());
        order_R.push_back(start + i);
      }
      plan.local_counts[e] += plan.recv_counts[s * e_local + e];
    }
  plan.to_expert_major = Tensor::from_vector(order_R, {static_cast<int64_t>(order_R.size())}).to(recv_RD.device());
  plan.to_source_major = Tensor::from_vector(inverse_R, {static_cast<int64_t>(inverse_R.size())}).to(recv_RD.device());
  return order_R.empty() ? recv_RD : index_select(recv_RD, plan.to_expert_major);
}

Tensor ExpertDispatcher::combine_preprocess(const Tensor& y_RD, const DispatchPlan& plan) const {
  if (plan.ep == 1 || plan.to_source_major.numel() == 0) return y_RD;
  return index_select(y_RD, plan.to_source_major);
}

Tensor ExpertDispatcher::combine_postprocess(const Tensor& yp_ND, const DispatchPlan&) const { return yp_ND; }

RowsInFlight::RowsInFlight(Tensor arrived) : arrived_(std::move(arrived)) {}
RowsInFlight::RowsInFlight(std::function<Tensor()> wait) : wait_(std::move(wait)) {}

// Moved-from: no exchange left (a moved std::function is only "valid but unspecified").
RowsInFlight::RowsInFlight(RowsInFlight&& o) noexcept : arrived_(std::move(o.arrived_)), wait_(std::exchange(o.wait_, nullptr)) {}

RowsInFlight& RowsInFlight::operator=(RowsInFlight&& o) {
  if (this != &o) {
    if (wait_) wait();  // every rank finishes what it started
    arrived_ = std::move(o.arrived_);
    wait_ = std::exchange(o.wait_, nullptr);
  }
  return *this;
}

RowsInFlight::~RowsInFlight() {
  if (!wait_) return;
  try {
    wait_();
  } catch (...) {  // a destructor must not throw; the caller's own error is on its way
  }
}

Tensor RowsInFlight::wait() {
  if (wait_) {
    auto finish = std::move(wait_);
    wait_ = nullptr;
    arrived_ = finish();
  }
  MLAMOE_CHECK(arrived_.defined(), "RowsInFlight::wait: no exchange in flight (never started, or already waited for)");
  return std::move(arrived_);
}

Dispatched ExpertDispatcher::dispatch(const Tensor& xp_ND, const std::vector<int64_t>& counts_E) {
  Dispatched out;
  Tensor send_ND = dispatch_preprocess(xp_ND, counts_E, out.plan);
  Tensor recv_RD = dispatch_all_to_all(send_ND, out.plan).wait();
  out.rows = dispatch_postprocess(recv_RD, out.plan);
  return out;
}

Tensor ExpertDispatcher::combine(const Tensor& y_RD, const DispatchPlan& plan) {
  Tensor src_major_RD = combine_preprocess(y_RD, plan);
  Tensor yp_ND = combine_all_to_all(src_major_RD, plan).wait();
  return combine_postprocess(yp_ND, plan);
}

RowsInFlight LocalDispatcher::dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) {
  plan.recv_counts = plan.send_counts;
  plan.recv_rows = plan.send_rows;
  return RowsInFlight(send_ND);
}

}  // namespace mlamoe
