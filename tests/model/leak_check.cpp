// Built with LeakSanitizer and run by ctest (test "leak_check"): a small MLA-shaped forward + backward through a
// chain of ops, twice (as two micro-batches), then everything dropped. Exits non-zero if the live
// byte count does not return to zero; LeakSanitizer fails it on any leaked allocation.
#include <cstdio>

#include "model/ops/ops.h"

using namespace mlamoe;

int main() {
  {
    Rng rng(7);
    Tensor emb = Tensor::randn({32, 16}, rng, 0.1).set_requires_grad(true);
    Tensor wq = Tensor::randn({2 * 12, 16}, rng, 0.1).set_requires_grad(true);
    Tensor wk = Tensor::randn({2 * 12, 16}, rng, 0.1).set_requires_grad(true);
    Tensor wv = Tensor::randn({2 * 8, 16}, rng, 0.1).set_requires_grad(true);
    Tensor norm = Tensor::ones({16}).set_requires_grad(true);
    Tensor head = Tensor::randn({32, 2 * 8}, rng, 0.1).set_requires_grad(true);
    for (int micro = 0; micro < 2; ++micro) {
      Tensor ids = Tensor::randint({2, 10}, rng, 0, 32);
      Tensor h = rmsnorm(embedding(emb, ids), norm, 1e-6);
      Tensor q = linear(h, wq).reshape({2, 10, 2, 12}), k = linear(h, wk).reshape({2, 10, 2, 12});
      std::vector<Tensor> qs = split(q, {8, 4}, -1);
      RopeTables tab = rope_tables(0, 10, 4, 10000.0);
      q = concat({qs[0], rope(qs[1], tab)}, -1);
      Tensor v = linear(h, wv).reshape({2, 10, 2, 8});
      Tensor o = causal_attention(q, k, v, 0.3).reshape({20, 16});
      TopK top = topk(softmax(o), 2);
      Tensor routed = index_add(Tensor::zeros({20, 2}), Tensor::arange(20), top.values);
      Tensor logits = add(linear(o, head), sum(routed, 1, true));
      Tensor loss = add(cross_entropy(logits, ids.reshape({-1})), mean(sigmoid(silu(logits))));
      loss.backward();
    }
  }
  long long live = Storage::live_bytes(DeviceType::CPU);
  std::printf("live bytes after everything is dropped: %lld\n", live);
  return live == 0 ? 0 : 1;
}
