#include "parallel/ep_dispatcher.h"

#include <numeric>

#include "model/autograd/node.h"
#include "model/ops/ops.h"
#include "parallel/host_staging.h"

namespace mlamoe {

namespace {

// x [rows, D]: send_rows[r] consecutive rows to rank r.
Tensor exchange_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                     Communicator& comm) {
  int64_t d = x.size(1);
  int64_t total = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({total, d}, x.dtype(), x.device());
  std::vector<int64_t> send_elems(send_rows.size()), recv_elems(recv_rows.size());
  for (size_t r = 0; r < send_elems.size(); ++r) send_elems[r] = send_rows[r] * d, recv_elems[r] = recv_rows[r] * d;
  comm.all_to_all_v(comm_buffer(xc), send_elems, comm_buffer(out), recv_elems, x.dtype());
  return out;
}

struct AllToAllRowsBackward : Node {
  const char* name() const override { return "AllToAllRowsBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {exchange_rows(dout, recv_rows, send_rows, *comm)}; }
  std::vector<int64_t> send_rows, recv_rows;
  Communicator* comm = nullptr;
};

}  // namespace

Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                       Communicator& comm) {
  MLAMOE_CHECK(x.dim() == 2, "all_to_all_rows: expected rows [rows, D], got " << x.describe());
  MLAMOE_CHECK(std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0}) == x.size(0),
               "all_to_all_rows: send counts do not add up to the " << x.size(0) << " rows");
  Tensor out = exchange_rows(x, send_rows, recv_rows, comm);
  // Every rank records the node (or none does): the backward exchange is collective.
  if (needs_grad({x})) {
    auto node = std::make_shared<AllToAllRowsBackward>();
    node->send_rows = send_rows;
    node->recv_rows = recv_rows;
    node->comm = &comm;
    connect(out, node, {x});
  }
  return out;
}

EpDispatcher::EpDispatcher(Communicator& comm, int64_t n_experts) : comm_(comm), n_experts_(n_experts) {
  MLAMOE_CHECK(n_experts % comm.size() == 0,
               "expert parallelism: ep = " << comm.size() << " must divide " << n_experts << " experts");
  counts_per_rank_.assign(comm.size(), n_experts / comm.size());
}

Tensor EpDispatcher::dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) {
  int64_t ep = plan.ep, e_local = plan.local_experts;
  MLAMOE_CHECK(ep == comm_.size() && ep * e_local == n_experts_ && static_cast<int64_t>(plan.send_counts.size()) == n_experts_,
               "dispatch_all_to_all: a plan for ep = " << ep << " with " << plan.send_counts.size() << " expert counts, the "
                                                       << comm_.name() << " group has " << comm_.size() << " ranks and "
                                                       << n_experts_ << " experts");
  // Counts first (E_local of them per pair of ranks), then the rows (source-major, expert-minor).
  plan.recv_counts.assign(ep * e_local, 0);
  comm_.all_to_all_v(plan.send_counts.data(), counts_per_rank_, plan.recv_counts.data(), counts_per_rank_, DType::I64);
  plan.recv_rows.assign(ep, 0);
  for (int64_t s = 0; s < ep; ++s)
    for (int64_t e = 0; e < e_local; ++e) plan.recv_rows[s] += plan.recv_counts[s * e_local + e];
  return all_to_all_rows(send_ND, plan.send_rows, plan.recv_rows, comm_);
}

Tensor EpDispatcher::combine_all_to_all(const Tensor& y_RD, const DispatchPlan& plan) {
  return all_to_all_rows(y_RD, plan.recv_rows, plan.send_rows, comm_);
}

}  // namespace mlamoe
