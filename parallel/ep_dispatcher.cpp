#include "parallel/ep_dispatcher.h"

#include <numeric>

#include "model/autograd/node.h"
#include "model/ops/ops.h"
#include "parallel/host_staging.h"

namespace mlamoe {

namespace {

// One exchange of rows in flight: x [rows, D], send_rows[r] consecutive rows to rank r, into
// out [Σ recv_rows, D] in rank order. The request's wait completes it; x stays alive until then.
struct Exchange {
  Tensor x, out;
  std::unique_ptr<Request> request;
};

std::shared_ptr<Exchange> start_exchange(const Tensor& x, const std::vector<int64_t>& send_rows,
                                         const std::vector<int64_t>& recv_rows, Communicator& comm) {
  int64_t d = x.size(1);
  int64_t total = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  auto ex = std::make_shared<Exchange>();
  ex->x = x.contiguous();
  ex->out = Tensor::empty({total, d}, x.dtype(), x.device());
  std::vector<int64_t> send_elems(send_rows.size()), recv_elems(recv_rows.size());
  for (size_t r = 0; r < send_elems.size(); ++r) send_elems[r] = send_rows[r] * d, recv_elems[r] = recv_rows[r] * d;
  ex->request = comm.iall_to_all_v(comm_buffer(ex->x), send_elems, comm_buffer(ex->out), recv_elems, x.dtype());
  return ex;
}

Tensor finish_exchange(Exchange& ex) {
  ex.request->wait();
  ex.request.reset();
  ex.x = Tensor();
  return std::move(ex.out);
}

// The backward of one exchange, as two nodes so that other work runs while the gradients travel
// (model/autograd/node.h, Node::BackwardOrder). In the graph: x -> RowsSent -> (token) ->
// RowsArrived -> out. RowsArrived's backward starts the reverse exchange of dout as soon as dout
// is complete; RowsSent's backward, run once nothing else is ready, waits and hands x its gradient.
struct ReverseExchange {
  std::vector<int64_t> send_rows, recv_rows;  // of the forward exchange
  Communicator* comm = nullptr;
  bool overlap = true;  // false: plain nodes, the wait follows the start at once
  std::shared_ptr<Exchange> in_flight;
};

struct RowsArrivedBackward : Node {
  const char* name() const override { return "AllToAllRowsBackward"; }
  BackwardOrder backward_order() const override {
    return state->overlap ? BackwardOrder::StartsCommunication : BackwardOrder::Normal;
  }
  std::vector<Tensor> backward(const Tensor& dout) override {
    state->in_flight = start_exchange(dout, state->recv_rows, state->send_rows, *state->comm);
    return {Tensor::zeros({0}, DType::F32, dout.device())};  // the token's gradient: "started"
  }
  std::shared_ptr<ReverseExchange> state;
};

struct RowsSentBackward : Node {
  const char* name() const override { return "AllToAllRowsWait"; }
  BackwardOrder backward_order() const override {
    return state->overlap ? BackwardOrder::WaitsForCommunication : BackwardOrder::Normal;
  }
  std::vector<Tensor> backward(const Tensor&) override {
    MLAMOE_CHECK(state->in_flight, "all_to_all_rows backward: the reverse exchange was never started");
    auto ex = std::move(state->in_flight);
    return {finish_exchange(*ex)};
  }
  std::shared_ptr<ReverseExchange> state;
};

}  // namespace

RowsInFlight all_to_all_rows_start(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                                   Communicator& comm, bool overlap) {
  MLAMOE_CHECK(x.dim() == 2, "all_to_all_rows: expected rows [rows, D], got " << x.describe());
  MLAMOE_CHECK(std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0}) == x.size(0),
               "all_to_all_rows: send counts do not add up to the " << x.size(0) << " rows");
  std::shared_ptr<Exchange> ex = start_exchange(x, send_rows, recv_rows, comm);
  // Every rank records the nodes (or none does): the backward exchange is collective.
  std::shared_ptr<ReverseExchange> state;
  Tensor token;
  if (needs_grad({x})) {
    state = std::make_shared<ReverseExchange>();
    state->send_rows = send_rows;
    state->recv_rows = recv_rows;
    state->comm = &comm;
    state->overlap = overlap;
    auto sent = std::make_shared<RowsSentBackward>();
    sent->state = state;
    token = Tensor::zeros({0}, DType::F32, x.device());
    connect(token, sent, {x});
  }
  RowsInFlight in_flight([ex, state, token]() {
    Tensor out = finish_exchange(*ex);
    if (state) {
      auto arrived = std::make_shared<RowsArrivedBackward>();
      arrived->state = state;
      connect(out, arrived, {token});
    }
    return out;
  });
  return overlap ? std::move(in_flight) : RowsInFlight(in_flight.wait());
}

Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                       Communicator& comm) {
  return all_to_all_rows_start(x, send_rows, recv_rows, comm).wait();
}

EpDispatcher::EpDispatcher(Communicator& comm, int64_t n_experts, bool overlap)
    : comm_(comm), n_experts_(n_experts), overlap_(overlap) {
  MLAMOE_CHECK(n_experts % comm.size() == 0,
               "expert parallelism: ep = " << comm.size() << " must divide " << n_experts << " experts");
  counts_per_rank_.assign(comm.size(), n_experts / comm.size());
}

RowsInFlight EpDispatcher::dispatch_all_to_all(const Tensor& send_ND, DispatchPlan& plan) {
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
  return all_to_all_rows_start(send_ND, plan.send_rows, plan.recv_rows, comm_, overlap_);
}

RowsInFlight EpDispatcher::combine_all_to_all(const Tensor& y_RD, const DispatchPlan& plan) {
  return all_to_all_rows_start(y_RD, plan.recv_rows, plan.send_rows, comm_, overlap_);
}

}  // namespace mlamoe
