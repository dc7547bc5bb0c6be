#include "parallel/ep_dispatcher.h"

#include <numeric>

#include "model/autograd/node.h"
#include "model/ops/ops.h"

namespace mlamoe {

namespace {

Tensor exchange_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows, Communicator& comm) {
  int64_t d = x.size(1);
  int64_t total = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({total, d}, x.dtype(), x.device());
  std::vector<int64_t> sc(send_rows.size()), rc(recv_rows.size());
  for (size_t r = 0; r < sc.size(); ++r) sc[r] = send_rows[r] * d, rc[r] = recv_rows[r] * d;
  comm.all_to_all_v(xc.raw_data(), sc, out.raw_data(), rc, x.dtype());
  return out;
}

struct AllToAllRowsBackward : Node {
  const char* name() const override { return "AllToAllRowsBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {exchange_rows(dout, recv_rows, send_rows, *comm)}; }
  std::vector<int64_t> send_rows, recv_rows;
  Communicator* comm = nullptr;
};

// What combine needs: the exchange counts and the regrouping.
struct EpPlan {
  std::vector<int64_t> send_rows, recv_rows;
  Tensor to_expert_major;  // [R] source-major row of each expert-major row
  Tensor to_source_major;  // [R] its inverse
};

}  // namespace

Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows, Communicator& comm) {
  MLAMOE_CHECK(x.dim() == 2, "all_to_all_rows: expected rows [S, d], got " << x.describe());
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
  MLAMOE_CHECK(n_experts % comm.size() == 0, "expert parallelism: ep = " << comm.size() << " must divide " << n_experts << " experts");
}

Dispatched EpDispatcher::dispatch(const Tensor& xp, const std::vector<int64_t>& counts) {
  int64_t ep = comm_.size(), local = n_experts_ / ep;
  // ---- local: rows per destination rank; the per-expert counts each destination needs ----
  std::vector<int64_t> send_rows(ep, 0);
  for (int64_t e = 0; e < n_experts_; ++e) send_rows[e / local] += counts[e];
  // ---- communication: counts first (local of them per pair), then the rows ----
  std::vector<int64_t> recv_counts(ep * local);
  comm_.all_to_all_v(counts.data(), std::vector<int64_t>(ep, local), recv_counts.data(), std::vector<int64_t>(ep, local), DType::I64);
  std::vector<int64_t> recv_rows(ep, 0);
  for (int64_t s = 0; s < ep; ++s)
    for (int64_t e = 0; e < local; ++e) recv_rows[s] += recv_counts[s * local + e];
  Tensor rows = all_to_all_rows(xp, send_rows, recv_rows, comm_);  // source-major, expert-minor
  // ---- local: regroup source-major -> expert-major ----
  auto plan = std::make_shared<EpPlan>();
  std::vector<int64_t> start(ep * local), order, inverse(rows.size(0));
  int64_t off = 0;
  for (int64_t s = 0; s < ep; ++s)
    for (int64_t e = 0; e < local; ++e) start[s * local + e] = off, off += recv_counts[s * local + e];
  Dispatched out;
  out.local_counts.assign(local, 0);
  for (int64_t e = 0; e < local; ++e)
    for (int64_t s = 0; s < ep; ++s) {
      for (int64_t i = 0; i < recv_counts[s * local + e]; ++i) {
        inverse[start[s * local + e] + i] = static_cast<int64_t>(order.size());
        order.push_back(start[s * local + e] + i);
      }
      out.local_counts[e] += recv_counts[s * local + e];
    }
  plan->send_rows = send_rows;
  plan->recv_rows = recv_rows;
  plan->to_expert_major = Tensor::from_vector(order, {static_cast<int64_t>(order.size())});
  plan->to_source_major = Tensor::from_vector(inverse, {static_cast<int64_t>(inverse.size())});
  out.rows = order.empty() ? rows : index_select(rows, plan->to_expert_major);
  out.plan = plan;
  return out;
}

Tensor EpDispatcher::combine(const Tensor& y, const Dispatched& d) {
  const auto& plan = *static_cast<const EpPlan*>(d.plan.get());
  Tensor src_major = plan.to_source_major.numel() == 0 ? y : index_select(y, plan.to_source_major);  // local
  return all_to_all_rows(src_major, plan.recv_rows, plan.send_rows, comm_);                         // communication
}

}  // namespace mlamoe
