#include "parallel/pipeline.h"

#include <algorithm>
#include <deque>

#include "model/model_size.h"
#include "model/ops/ops.h"
#include "parallel/host_staging.h"

namespace mlamoe {

std::vector<int64_t> split_layers(const ModelConfig& c, int64_t pp) {
  int64_t n = c.num_hidden_layers;
  MLAMOE_CHECK(pp >= 1 && pp <= n, "pipeline: " << pp << " stages for " << n << " layers");
  ModelSize s = model_size(c, 1);
  double attn = static_cast<double>(s.attention_matmul);
  std::vector<double> cost(n);
  for (int64_t l = 0; l < n; ++l) cost[l] = attn + static_cast<double>(c.is_moe_layer(l) ? s.moe_active : s.dense_mlp);
  // The last stage also runs the head and the MTP modules (each a layer plus a head).
  double tail = static_cast<double>(c.vocab_size * c.hidden_size) +
                static_cast<double>(c.num_nextn_predict_layers) * (static_cast<double>(s.mtp_active_matmul));
  // Exactly pp non-empty contiguous stages minimising the largest stage cost: a small dynamic
  // program (n ≤ a few hundred layers). best[k][i]: the bottleneck of the first i layers on k stages.
  std::vector<double> prefix(n + 1, 0.0);
  for (int64_t l = 0; l < n; ++l) prefix[l + 1] = prefix[l] + cost[l];
  auto stage_cost = [&](int64_t a, int64_t b) { return prefix[b] - prefix[a] + (b == n ? tail : 0.0); };
  const double inf = 1e300;
  std::vector<std::vector<double>> best(pp + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<int64_t>> cut(pp + 1, std::vector<int64_t>(n + 1, 0));
  best[0][0] = 0;
  for (int64_t k = 1; k <= pp; ++k)
    for (int64_t i = k; i <= n; ++i)
      for (int64_t j = k - 1; j < i; ++j) {
        double v = std::max(best[k - 1][j], stage_cost(j, i));
        if (v < best[k][i]) best[k][i] = v, cut[k][i] = j;
      }
  std::vector<int64_t> begin(pp + 1, n);
  for (int64_t k = pp, i = n; k >= 1; --k) {
    begin[k] = i;
    i = cut[k][i];
    begin[k - 1] = i;
  }
  return begin;
}

namespace {

constexpr int kActivationTag = 0, kGradientTag = 1;
int tag_of(size_t mb, int kind) { return static_cast<int>(2 * mb) + kind; }

struct InFlight {
  size_t mb;
  Tensor input;  // the received activation (a leaf), undefined on the first stage
  ModelOutput out;
};

}  // namespace

StageSums run_pipeline(const DeepSeekModel& model, Mesh& mesh, const std::vector<Tensor>& micro_batches,
                       const std::vector<LossWeights>& weights, double loss_scale, GradSync* sync, double backward_factor) {
  MLAMOE_CHECK(weights.size() == micro_batches.size(),
               "run_pipeline: " << weights.size() << " loss weights for " << micro_batches.size() << " micro-batches");
  const int64_t p = mesh.shape.pp, s = mesh.pp_rank, m = static_cast<int64_t>(micro_batches.size());
  const int prev = static_cast<int>(s - 1), next = static_cast<int>(s + 1);
  Communicator& pp = *mesh.pp;
  StageSums sums;
  std::deque<InFlight> flight;
  // Buffers first: destroyed last, after the requests (whose destructors complete the sends, NCCL's
  // held ones included) when an error unwinds the step.
  std::vector<Tensor> send_buffers;  // kept alive until their sends complete
  std::vector<std::unique_ptr<Request>> sends;
  int64_t d = model.cfg.hidden_size;
  size_t next_fwd = 0, backwards_done = 0;

  // ---- messages: sends are non-blocking (waited for at the end); a receive is posted beside the
  // send that goes with it, as one batch, and waited for (see the schedule below) ----
  auto send_activation = [&](const InFlight& f) {
    if (mesh.last_stage()) return;
    Tensor h = f.out.hidden.detach().contiguous();
    send_buffers.push_back(h);
    sends.push_back(pp.isend(comm_buffer(h), h.numel(), h.dtype(), next, tag_of(f.mb, kActivationTag)));
  };
  auto send_gradient = [&](const InFlight& f) {
    if (mesh.first_stage()) return;
    Tensor gi = f.input.grad().contiguous();
    send_buffers.push_back(gi);
    sends.push_back(pp.isend(comm_buffer(gi), gi.numel(), gi.dtype(), prev, tag_of(f.mb, kGradientTag)));
  };
  auto recv_activation = [&](size_t mb) {  // the input of micro-batch mb (undefined on the first stage)
    if (mesh.first_stage()) return Tensor();
    const Tensor& w = micro_batches[mb];
    Tensor in = Tensor::empty({w.size(0), w.size(1) - 1, d}, model.dtype, model.params.device());
    pp.irecv(comm_buffer(in), in.numel(), in.dtype(), prev, tag_of(mb, kActivationTag))->wait();
    return in;
  };
  auto recv_gradient = [&](const InFlight& f) {  // dL/dh of f's output (undefined on the last stage)
    if (mesh.last_stage()) return Tensor();
    Tensor g = Tensor::empty(f.out.hidden.shape(), f.out.hidden.dtype(), f.out.hidden.device());
    pp.irecv(comm_buffer(g), g.numel(), g.dtype(), next, tag_of(f.mb, kGradientTag))->wait();
    return g;
  };

  // ---- compute ----
  auto forward = [&](Tensor input) {
    size_t mb = next_fwd++;
    const Tensor& w = micro_batches[mb];
    InFlight f{mb, std::move(input), {}};
    if (f.input.defined()) f.input.set_requires_grad(true);
    f.out = model.forward_stage(w, f.input, false, weights[mb]);
    if (mesh.last_stage()) {
      sums.lm += f.out.lm_loss.item() * loss_scale;
      if (f.out.mtp_loss.defined()) sums.mtp += f.out.mtp_loss.item() * loss_scale;
    }
    if (f.out.balance_loss.defined()) sums.balance += f.out.balance_loss.item() * loss_scale;
    sums.layer_balance.resize(f.out.layer_balance.size(), 0.0);
    for (size_t l = 0; l < f.out.layer_balance.size(); ++l) sums.layer_balance[l] += f.out.layer_balance[l] * loss_scale;
    if (sums.counts.empty())
      sums.counts = f.out.counts;
    else
      for (size_t l = 0; l < sums.counts.size(); ++l)
        for (size_t e = 0; e < sums.counts[l].size(); ++e) sums.counts[l][e] += f.out.counts[l][e];
    flight.push_back(std::move(f));
  };
  // The oldest micro-batch in flight, given dL/dh of its output (g; undefined on the last stage).
  auto backward = [&](const Tensor& g) {
    InFlight f = std::move(flight.front());
    flight.pop_front();
    if (sync && ++backwards_done == static_cast<size_t>(m)) sync->begin_last_backward();
    Tensor surrogate;
    if (mesh.last_stage()) {
      surrogate = scale(f.out.loss, loss_scale * backward_factor);
    } else {
      // Σ h ⊙ dL/dh carries the next stage's gradient into this stage's graph; this stage's
      // balance losses join the same backward.
      surrogate = sum(mul(f.out.hidden, g));
      if (backward_factor != 1.0) surrogate = scale(surrogate, backward_factor);
      if (f.out.balance_loss.defined()) surrogate = add(surrogate, scale(f.out.balance_loss, loss_scale * backward_factor));
    }
    surrogate.backward();
    return f;
  };

  // ---- 1F1B, its messages paired as Megatron-Core pairs them: in the steady state a stage sends
  // its newest activation and receives the gradient of its oldest micro-batch together
  // (send_forward_recv_backward), then sends that gradient on and receives the next input together
  // (send_backward_recv_forward). Posted in this order, each pair matches the neighbour's pair, so
  // a transport that runs a rank's messages strictly in posting order, as NCCL runs them on its
  // stream, cannot deadlock; MPI matches by tag and needs no such care. ----
  int64_t warmup = std::min(p - s - 1, m), steady = m - warmup;
  for (int64_t i = 0; i < warmup; ++i) {
    forward(recv_activation(next_fwd));
    send_activation(flight.back());
  }
  Tensor input = steady > 0 ? recv_activation(next_fwd) : Tensor();
  for (int64_t i = 0; i < steady; ++i) {
    forward(std::move(input));
    send_activation(flight.back());
    InFlight done = backward(recv_gradient(flight.front()));
    send_gradient(done);
    if (i + 1 < steady) input = recv_activation(next_fwd);
  }
  for (int64_t i = 0; i < warmup; ++i) send_gradient(backward(recv_gradient(flight.front())));
  for (auto& r : sends) r->wait();
  return sums;
}

std::vector<double> eval_pipeline(const DeepSeekModel& model, Mesh& mesh, const std::vector<Tensor>& micro_batches) {
  NoGrad ng;
  Communicator& pp = *mesh.pp;
  const int prev = static_cast<int>(mesh.pp_rank - 1), next = static_cast<int>(mesh.pp_rank + 1);
  std::vector<double> losses;
  for (size_t mb = 0; mb < micro_batches.size(); ++mb) {
    const Tensor& w = micro_batches[mb];
    Tensor in;
    if (!mesh.first_stage()) {
      in = Tensor::empty({w.size(0), w.size(1) - 1, model.cfg.hidden_size}, model.dtype, model.params.device());
      pp.recv(comm_buffer(in), in.numel(), in.dtype(), prev, tag_of(mb, kActivationTag));
    }
    ModelOutput out = model.forward_stage(w, in);
    if (mesh.last_stage()) {
      losses.push_back(out.lm_loss.item());
    } else {
      Tensor h = out.hidden.contiguous();
      pp.send(comm_buffer(h), h.numel(), h.dtype(), next, tag_of(mb, kActivationTag));
    }
  }
  return losses;
}

}  // namespace mlamoe
