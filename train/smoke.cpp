#include "train/smoke.h"

#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "data/byte_tokenizer.h"
#include "model/ops/ops.h"
#include "train/cli_args.h"

extern "C" int openblas_get_parallel(void);

namespace mlamoe {

namespace {

// Sizes: D model width, H heads, each head DN position-free + DR rotary dims for q/k, DV for v.
constexpr int64_t D = 64, H = 4, DN = 8, DR = 8, DQK = DN + DR, DV = 16, FF = 176;

struct SmokeModel {
  Tensor embed;       // [V, D]
  Tensor attn_norm;   // [D]
  Tensor wq;          // [H·DQK, D]
  Tensor wk;          // [H·DQK, D]
  Tensor wv;          // [H·DV, D]
  Tensor wo;          // [D, H·DV]
  Tensor mlp_norm;    // [D]
  Tensor w_gate;      // [FF, D]
  Tensor w_up;        // [FF, D]
  Tensor w_down;      // [D, FF]
  Tensor final_norm;  // [D]
  Tensor head;        // [V, D]

  std::vector<Tensor> params() const {
    return {embed, attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down, final_norm, head};
  }

  explicit SmokeModel(Rng& rng) {
    auto w = [&](Shape s) { return Tensor::randn(s, rng, 0.02).set_requires_grad(true); };
    auto ones = [](int64_t n) { return Tensor::ones({n}).set_requires_grad(true); };
    embed = w({kByteVocabSize, D});
    attn_norm = ones(D);
    wq = w({H * DQK, D});
    wk = w({H * DQK, D});
    wv = w({H * DV, D});
    wo = w({D, H * DV});
    mlp_norm = ones(D);
    w_gate = w({FF, D});
    w_up = w({FF, D});
    w_down = w({D, FF});
    final_norm = ones(D);
    head = w({kByteVocabSize, D});
  }

  // ids [B, T] -> logits [B·T, V]
  Tensor forward(const Tensor& ids) const {
    int64_t b = ids.size(0), t = ids.size(1);
    RopeTables rope_tab = rope_tables(0, t, DR, 10000.0);
    Tensor x = embedding(embed, ids);  // [B, T, D]
    Tensor h = rmsnorm(x, attn_norm, 1e-6);
    auto rotate = [&](const Tensor& proj) {  // [B, T, H·DQK] -> rope on the last DR dims of each head
      std::vector<Tensor> parts = split(proj.reshape({b, t, H, DQK}), {DN, DR}, -1);
      return concat({parts[0], rope(parts[1], rope_tab)}, -1);
    };
    Tensor q = rotate(linear(h, wq)), k = rotate(linear(h, wk));
    Tensor v = linear(h, wv).reshape({b, t, H, DV});
    Tensor o = causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(DQK)));
    x = add(x, linear(o.reshape({b, t, H * DV}), wo));
    h = rmsnorm(x, mlp_norm, 1e-6);
    x = add(x, linear(swiglu(linear(h, w_gate), linear(h, w_up)), w_down));
    return linear(rmsnorm(x, final_norm, 1e-6), head).reshape({b * t, kByteVocabSize});
  }
};

// Plain Adam (β1 0.9, β2 0.95), enough for a smoke run; AdamW with schedules lives with the trainer.
struct Adam {
  std::vector<Tensor> params, m, v;
  double lr, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  int64_t t = 0;

  Adam(std::vector<Tensor> ps, double lr) : params(std::move(ps)), lr(lr) {
    for (const Tensor& p : params) {
      m.push_back(Tensor::zeros(p.shape()));
      v.push_back(Tensor::zeros(p.shape()));
    }
  }

  void step() {
    ++t;
    double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = params[i].grad();
      if (!g.defined()) continue;
      float* p = params[i].data<float>();
      float* pm = m[i].data<float>();
      float* pv = v[i].data<float>();
      const float* pg = g.data<float>();
      for (int64_t j = 0; j < params[i].numel(); ++j) {
        pm[j] = static_cast<float>(b1 * pm[j] + (1 - b1) * pg[j]);
        pv[j] = static_cast<float>(b2 * pv[j] + (1 - b2) * pg[j] * pg[j]);
        p[j] -= static_cast<float>(lr * (pm[j] / c1) / (std::sqrt(pv[j] / c2) + eps));
      }
      params[i].zero_grad();
    }
  }
};

// A batch of random windows from tokens [lo, hi): inputs [B, T] and next-token targets [B·T].
void sample_batch(const std::vector<int32_t>& tokens, int64_t lo, int64_t hi, int64_t b, int64_t t, Rng& rng, Tensor& x,
                  Tensor& y) {
  x = Tensor::empty({b, t}, DType::I32);
  y = Tensor::empty({b * t}, DType::I32);
  int32_t* px = x.data<int32_t>();
  int32_t* py = y.data<int32_t>();
  for (int64_t i = 0; i < b; ++i) {
    int64_t start = rng.randint(lo, hi - t - 1);
    for (int64_t j = 0; j < t; ++j) {
      px[i * t + j] = tokens[start + j];
      py[i * t + j] = tokens[start + j + 1];
    }
  }
}

}  // namespace

int print_version() {
#ifdef MLAMOE_WITH_CUDA
  const char* cuda = "on";
#else
  const char* cuda = "off";
#endif
  std::printf("mlamoe 0.1 (core)\n  CUDA backend: %s (devices visible: %d)\n  OpenMP threads: %d\n  OpenBLAS: %s\n", cuda,
              cuda_device_count(), omp_get_max_threads(),
              openblas_get_parallel() == 2   ? "OpenMP build"
              : openblas_get_parallel() == 1 ? "pthread build"
                                             : "serial build");
  return 0;
}

int run_smoke(const std::vector<std::string>& argv) {
  CliArgs args("smoke", argv);
  std::string path = args.get("text", "");
  int64_t steps = args.get_int("steps", 1000, 1, 1000000);
  int64_t b = args.get_int("batch", 16, 1, 4096);
  int64_t t = args.get_int("seq", 128, 2, 8192);
  double lr = args.get_double("lr", 3e-3, 0.0, 1.0);
  uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
  args.reject_unknown();
  MLAMOE_CHECK(!path.empty(), "smoke: --text FILE is required (the README's run command prepares one)");

  std::vector<int32_t> tokens = byte_encode(read_text_file(path));
  int64_t n = static_cast<int64_t>(tokens.size()), split_at = n - n / 10;  // last 10% held out
  MLAMOE_CHECK(split_at - (t + 2) > 0 && n - split_at > t + 2, "smoke: '" << path << "' has " << n << " bytes, too few for --seq "
                                                                          << t << " (need about " << 20 * (t + 2) << ")");
  std::printf("smoke: %s, %lld bytes (%lld train / %lld held out), batch %lld x seq %lld, %lld steps, %d threads\n", path.c_str(),
              static_cast<long long>(n), static_cast<long long>(split_at), static_cast<long long>(n - split_at),
              static_cast<long long>(b), static_cast<long long>(t), static_cast<long long>(steps), omp_get_max_threads());

  Rng rng(seed);
  SmokeModel model(rng);
  Adam opt(model.params(), lr);
  int64_t nparams = 0;
  for (const Tensor& p : model.params()) nparams += p.numel();
  std::printf("smoke: %lld parameters; initial loss should be near ln(256) = %.3f\n", static_cast<long long>(nparams),
              std::log(256.0));

  auto eval = [&](int64_t batches) {
    NoGrad g;
    Rng erng(seed + 12345);
    double total = 0;
    for (int64_t i = 0; i < batches; ++i) {
      Tensor x, y;
      sample_batch(tokens, split_at, n, b, t, erng, x, y);
      total += cross_entropy(model.forward(x), y).item();
    }
    return total / static_cast<double>(batches);
  };

  double first_loss = 0, last_loss = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= steps; ++step) {
    Tensor x, y;
    sample_batch(tokens, 0, split_at, b, t, rng, x, y);
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    last_loss = loss.item();
    if (step == 1) first_loss = last_loss;
    MLAMOE_CHECK(std::isfinite(last_loss), "smoke: loss became " << last_loss << " at step " << step);
    if (step == 1 || step % 100 == 0 || step == steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %5lld/%lld  loss %.4f  tokens/s %.0f\n", static_cast<long long>(step), static_cast<long long>(steps),
                  last_loss, static_cast<double>(step * b * t) / secs);
      std::fflush(stdout);
    }
  }
  double held_out = eval(8);
  std::printf("smoke: train loss %.4f -> %.4f, held-out loss %.4f (bits/byte %.3f)\n", first_loss, last_loss, held_out,
              held_out / std::log(2.0));
  // A greedy continuation, so a person can see what the model learned.
  std::vector<int32_t> text = byte_encode("And God said");
  {
    NoGrad g;
    for (int i = 0; i < 60; ++i) {
      int64_t len = std::min<int64_t>(static_cast<int64_t>(text.size()), t);
      std::vector<int32_t> window(text.end() - len, text.end());
      Tensor logits = model.forward(Tensor::from_vector(window, {1, len}));
      TopK best = topk(logits.narrow(0, len - 1, 1), 1);
      text.push_back(static_cast<int32_t>(best.indices.item()));
    }
  }
  std::string sample = byte_decode(text);
  for (char& c : sample)
    if (c == '\n') c = ' ';
  std::printf("smoke: greedy sample: \"%s\"\n", sample.c_str());
  MLAMOE_CHECK(steps < 50 || last_loss < first_loss - 0.5,
               "smoke: the loss did not fall (" << first_loss << " -> " << last_loss << ")");
  return 0;
}

}  // namespace mlamoe
