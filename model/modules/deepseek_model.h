// The DeepSeek-V3-style model (model/README.md §1-5): embedding, L decoder blocks (dense, then MoE),
// final norm, untied head, and num_nextn_predict_layers multi-token-prediction modules that share the embedding and head.
// Parameters carry the Hugging Face names; the MTP module of depth k lives under
// `model.layers.{L+k-1}.*`, as in the V3 checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/modules/decoder_layer.h"

namespace mlamoe {

// Weights on the token-mean losses of one batch of windows, so that a global batch split into
// micro-batches and dp ranks gets the loss of the whole batch: Σ over every target of the global
// batch of nll / (targets in the global batch). A micro-batch holding n of the N targets of a loss
// gets weight n·S/N on its own token mean, where S is the number of micro-batches of the global
// batch (all ranks): with this weight and the caller's 1/S, its share is n/N of its mean, i.e. its
// summed nll over N. When every micro-batch holds the same number of targets (pretraining) the
// weight is exactly 1.0, so those runs compute bit for bit what an unweighted mean does.
struct LossWeights {
  double lm = 1.0;          // main next-token loss
  std::vector<double> mtp;  // per MTP depth k = 1..num_nextn_predict_layers (empty: all 1.0)

  // n·S/N; 0 when N = 0 (no target anywhere: the loss has nothing to average).
  static double share(int64_t n, int64_t shares, int64_t total) {
    return total > 0 ? static_cast<double>(n) * static_cast<double>(shares) / static_cast<double>(total) : 0.0;
  }
};

// Losses and routing statistics of one forward over a batch of windows.
struct ModelOutput {
  Tensor loss;                               // scalar: lm_loss + λ·mtp_loss + balance_loss
  Tensor lm_loss;                            // token-mean next-token cross-entropy (× LossWeights::lm); 0 without targets
  Tensor mtp_loss;                           // mean over depths k of L_k (each × LossWeights::mtp[k−1]); undefined without MTP
  Tensor balance_loss;                       // Σ over MoE layers (MTP layers included), undefined when no α is set
  Tensor logits;                             // [B, T, V] when requested
  Tensor hidden;                             // [B, T, D]: the output of a stage that is not the last
  std::vector<std::vector<int64_t>> counts;  // per MoE layer (moe_layer_names() order): tokens per expert
  std::vector<double> layer_balance;         // per MoE layer: its balance loss (0 when none)
};

// The part of the model one rank holds (parallel/README.md "Parallelism semantics"): its pipeline stage's
// main layers, the embedding on the first stage, the final norm, head and MTP on the last (which
// also holds the embedding when MTP is on: MTP reads it, and the runtime sums the two stages'
// gradients of it), and with expert parallelism only its ep rank's experts.
struct ModelShard {
  std::shared_ptr<ExpertDispatcher> dispatcher;  // null: every expert local
  int64_t first_layer = 0;                       // main layers [first_layer, end_layer) of this stage
  int64_t end_layer = -1;                        // -1: through the last layer
  bool first_stage = true;
  bool last_stage = true;
};

struct MtpModule {
  Tensor enorm;             // [D]      RMSNorm on the token embedding
  Tensor hnorm;             // [D]      RMSNorm on the previous depth's hidden state
  Tensor eh_proj;           // [D, 2D]  applied to [enorm(emb) ; hnorm(h)] (embedding half first, as the weights)
  Tensor shared_head_norm;  // [D]      shared_head.norm
  std::unique_ptr<DecoderLayer> block;
};

class DeepSeekModel {
 public:
  // New parameters initialised from `seed` (model/README.md §6: N(0, initializer_range), norms 1,
  // correction biases 0), in `dtype` (f32 for training; f64 for reference tests).
  DeepSeekModel(const ModelConfig& c, uint64_t seed, DType dtype = DType::F32, ModelShard shard = {});
  DeepSeekModel(const DeepSeekModel&) = delete;
  DeepSeekModel& operator=(const DeepSeekModel&) = delete;

  // windows [B, T+1] (i64 token ids): inputs are windows[:, :T], labels windows[:, 1:]; the MTP
  // module of depth k predicts windows[:, i+k+1] from position i. An entry −(id + 1) is token id
  // as an input but not a target (the SFT loss mask): its prediction is left out of the losses.
  // `weights` scale the token-mean losses (LossWeights); the default is the plain batch mean.
  ModelOutput forward(const Tensor& windows, bool keep_logits = false, const LossWeights& weights = {}) const;
  // One pipeline stage: the first stage embeds windows[:, :T], later stages take `hidden_in`
  // [B, T, D] from the previous one. The last stage returns the losses; other stages return
  // `hidden` for the next stage and their layers' balance loss (in balance_loss, also in loss).
  ModelOutput forward_stage(const Tensor& windows, const Tensor& hidden_in, bool keep_logits = false,
                            const LossWeights& weights = {}) const;

  // Targets of the loss at `depth` in windows [B, T+1] (0: the main lm loss, whose targets are
  // windows[:, 1:]; k ≥ 1: MTP depth k, targets windows[:, k+1:]): the entries not masked out.
  static int64_t count_targets(const Tensor& windows, int64_t depth);
  Tensor logits(const Tensor& ids) const;  // ids [B, T] -> [B, T, V], main model only

  // Incremental greedy decoding with the absorbed-MLA cache (one MlaCache per main layer).
  struct DecodeState {
    std::vector<MlaCache> caches;
    int64_t position = 0;
  };
  DecodeState new_decode_state(int64_t batch, int64_t capacity) const;
  Tensor decode_step(const Tensor& ids, DecodeState& state) const;  // ids [B, 1] -> logits [B, 1, V]

  // Activation recomputation for every decoder block, main and MTP (DecoderLayer::recompute).
  // Call it after freezing parameters: it notes which blocks have trainable ones.
  void set_recompute(bool on);

  // b += γ·sign(mean − c) for every MoE layer with a correction bias, from one step's counts.
  void update_biases(const std::vector<std::vector<int64_t>>& counts, double gamma);
  // "model.layers.{l}.mlp" of each MoE layer, main layers then MTP layers.
  const std::vector<std::string>& moe_layer_names() const { return moe_names_; }
  std::vector<Tensor> correction_biases() const;  // parallel to moe_layer_names(); undefined entries without one

  const ModelConfig cfg;
  const DType dtype;
  const ModelShard shard;
  ParameterStore params;

 private:
  Tensor trunk(const Tensor& ids, std::vector<LayerAux>& aux) const;  // ids [B, T] -> final-normed h [B, T, D]
  ModelOutput head_and_mtp(const Tensor& h, const Tensor& windows, bool keep_logits, const LossWeights& weights,
                           std::vector<LayerAux>& aux) const;
  std::vector<MoeLayer*> moe_layers_;

  Tensor embed_tokens;  // [V, d]
  std::vector<std::unique_ptr<DecoderLayer>> layers;
  Tensor norm;     // [d]
  Tensor lm_head;  // [V, d]
  std::vector<MtpModule> mtp;
  std::vector<std::string> moe_names_;
};

}  // namespace mlamoe
