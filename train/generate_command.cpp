#include "train/generate_command.h"

#include <cstdio>

#include "data/text_encoder.h"
#include "model/model_size.h"
#include "model/modules/deepseek_model.h"
#include "model/ops/ops.h"
#include "train/checkpoint.h"
#include "train/cli_args.h"

namespace mlamoe {

namespace {

int64_t argmax_last(const Tensor& logits) {  // logits [1, 1, V]
  auto v = logits.to_vector<float>();
  int64_t best = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(v.size()); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

int run_generate_command(const std::vector<std::string>& args) {
  CliArgs a("generate", args, {"verify"});
  std::string ckpt = a.get("checkpoint", "");
  TextEncoder enc = text_encoder(a.get("tokenizer", "byte"));
  std::string prompt = a.get("prompt", "");
  int64_t n_new = a.get_int("tokens", 200, 1, 1 << 20);
  bool verify = a.has_switch("verify");
  a.reject_unknown();
  MLAMOE_CHECK(!ckpt.empty(), "generate: --checkpoint FILE is required (a run directory's weights.h5 or checkpoints/step-*.h5)");
  MLAMOE_CHECK(!prompt.empty(), "generate: --prompt TEXT is required");

  ModelConfig cfg = parse_model_config(read_checkpoint_config(ckpt), ckpt);
  DeepSeekModel model(cfg, 0);
  load_checkpoint(ckpt, model, nullptr, nullptr);
  NoGrad ng;

  std::vector<int32_t> ids = enc.encode(prompt);
  if (enc.bos_id >= 0) ids.insert(ids.begin(), static_cast<int32_t>(enc.bos_id));
  for (int32_t id : ids) MLAMOE_CHECK(id < cfg.vocab_size, "generate: prompt token " << id << " >= vocab_size " << cfg.vocab_size);
  int64_t capacity = static_cast<int64_t>(ids.size()) + n_new;
  MLAMOE_CHECK(cfg.max_position_embeddings == 0 || capacity <= cfg.max_position_embeddings,
               "generate: prompt + --tokens = " << capacity << " exceeds max_position_embeddings = " << cfg.max_position_embeddings);

  auto state = model.new_decode_state(1, capacity);
  Tensor logits;
  for (int32_t id : ids) logits = model.decode_step(Tensor::from_vector<int64_t>({id}, {1, 1}), state);
  std::vector<int64_t> all(ids.begin(), ids.end());
  std::vector<int32_t> out;
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n_new; ++i) {
    int64_t next = argmax_last(logits);
    if (verify) {  // the same choice from a full forward over everything so far, no cache
      Tensor full = model.logits(Tensor::from_vector(all, {1, static_cast<int64_t>(all.size())}));
      if (argmax_last(full.narrow(1, full.size(1) - 1, 1).contiguous()) != next) ++mismatches;
    }
    if (next == enc.eos_id) break;
    all.push_back(next);
    out.push_back(static_cast<int32_t>(next));
    if (i + 1 < n_new) logits = model.decode_step(Tensor::from_vector<int64_t>({next}, {1, 1}), state);
  }
  std::printf("%s%s\n", prompt.c_str(), enc.decode(out).c_str());

  int64_t cached = 0;
  for (const auto& c : state.caches) cached += c.kv.size(2) + c.pe.size(2);
  ModelSize s = model_size(cfg, capacity);
  std::fprintf(stderr, "generate: %zu tokens | KV cache %lld elements/token = %lld bytes/token (f32; formula L*(r_kv+d_r) = %lld "
                       "elements, %lld bytes in bf16)\n",
               out.size(), static_cast<long long>(cached), static_cast<long long>(4 * cached),
               static_cast<long long>(s.kv_cache_elements_per_token), static_cast<long long>(2 * s.kv_cache_elements_per_token));
  if (verify) {
    std::fprintf(stderr, "generate: full-forward check: %lld of %zu greedy tokens differ from the cached decode\n",
                 static_cast<long long>(mismatches), out.size());
    MLAMOE_CHECK(mismatches == 0, "generate: the cached decode disagrees with the full forward");
  }
  return 0;
}

}  // namespace mlamoe
