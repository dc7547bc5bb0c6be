// Bytes each collective sends per training step, next to the analytic value for the layout.
//
//   mpirun -np N build/bench/bench_comm PP EP [--seq 128] [--batch 16]
//
// Runs tiny.json (f32) for 2 warm-up steps and 1 measured step on synthetic tokens with the
// layout pp × (dp = N/pp) × ep, then prints, for rank 0's groups, the payload bytes each kind of
// collective moved and the formula:
//   dp all-reduce (dense gradients, bucketed):  payload = dense gradient bytes of the stage;
//       a ring all-reduce sends 2(n−1)/n × payload per rank on the wire
//   edp all-reduce (expert gradients):          payload = this rank's expert gradient bytes
//   ZeRO-1 all-gather (parameters after AdamW): this rank's shard of every parameter
//   ep all-to-all (token rows, counted exactly as sent to other ranks): expected under uniform
//       routing 4 × T_local·K·d·4 bytes × (ep−1)/ep per MoE layer (dispatch and combine, forward
//       and backward)
//   pp send (activations forward, gradients backward): micro-batches × b·T·d·4 bytes each way
#include <cstdio>
#include <string>

#include "model/json_parse.h"
#include "model/model_size.h"
#include "parallel/grad_sync.h"
#include "parallel/mpi_runtime.h"
#include "train/distributed.h"
#include "train/train_step.h"

using namespace mlamoe;

int main(int argc, char** argv) {
  MpiRuntime mpi(&argc, &argv);
  try {
    if (argc < 3) throw Error("usage: mpirun -np N bench_comm PP EP [--seq 128] [--batch 16]");
    int64_t pp = std::stoll(argv[1]), ep = std::stoll(argv[2]), seq = 128, batch = 16;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (std::string(argv[i]) == "--seq") seq = std::stoll(argv[i + 1]);
      if (std::string(argv[i]) == "--batch") batch = std::stoll(argv[i + 1]);
    }
    nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
    ModelConfig cfg = parse_model_config(j, "tiny.json");
    MeshShape shape = mesh_shape(mpi.size(), pp, ep, cfg.n_routed_experts, cfg.num_hidden_layers);
    Mesh mesh = make_mesh(mpi_world_communicator(), shape);
    DeepSeekModel model(cfg, 1, DType::F32, shard_for(cfg, mesh));
    AdamW opt(model.params, {}, zero1_groups(mesh));
    GradSync sync(model.params, mesh);
    int64_t micro = 2, b = batch / (shape.dp * micro);
    if (b < 1) throw Error("--batch too small for the layout");
    Rng rng(5 + static_cast<uint64_t>(mesh.dp_rank));
    auto step = [&]() {
      std::vector<Tensor> mbs;
      for (int64_t m = 0; m < micro; ++m) mbs.push_back(Tensor::randint({b, seq + 1}, rng, 0, 256));
      train_step(model, opt, mbs, {1e-3, 1.0, 1e-3}, {&mesh, &sync});
    };
    step(), step();
    for (Communicator* c : {mesh.dp.get(), mesh.edp.get(), mesh.ep.get(), mesh.pp.get(), mesh.world.get(), mesh.embed.get()})
      c->stats() = CommStats();
    step();
    if (mesh.rank != 0) return 0;

    int64_t dense = 0, expert = 0, all = 0;
    for (const auto& p : model.params.all()) {
      if (!p.trainable) continue;
      (GradSync::is_expert_param(p.name) ? expert : dense) += p.tensor.numel() * 4;
      all += p.tensor.numel() * 4;
    }
    int64_t moe_layers = static_cast<int64_t>(model.moe_layer_names().size());
    double tokens_local = static_cast<double>(micro * b * seq);
    auto row = [](const char* what, double measured, double analytic, const char* note) {
      std::printf("%-34s %12.0f B   analytic %12.0f B   %s\n", what, measured, analytic, note);
    };
    std::printf(
        "bench_comm: tiny.json, %lld ranks = pp %lld x dp %lld (ep %lld), %lld micro-batches of %lld x %lld tokens per rank\n",
        static_cast<long long>(shape.world), static_cast<long long>(pp), static_cast<long long>(shape.dp),
        static_cast<long long>(ep), static_cast<long long>(micro), static_cast<long long>(b), static_cast<long long>(seq));
    double n = static_cast<double>(shape.dp);
    row("dp all-reduce payload", static_cast<double>(mesh.dp->stats().bytes["all_reduce"]),
        shape.dp > 1 ? static_cast<double>(dense) : 0, "dense gradient bytes of this stage");
    std::printf("%-34s %12s     ring on the wire %10.0f B   2(n-1)/n x payload\n", "", "",
                2 * (n - 1) / n * static_cast<double>(dense) * (shape.dp > 1));
    row("edp all-reduce payload", static_cast<double>(mesh.edp->stats().bytes["all_reduce"]),
        shape.edp() > 1 ? static_cast<double>(expert) : 0, "this rank's expert gradient bytes");
    double gathered = static_cast<double>(mesh.dp->stats().bytes["all_gather"] + mesh.edp->stats().bytes["all_gather"]);
    double zero_expect = (shape.dp > 1 ? static_cast<double>(dense) / n : 0) +
                         (shape.edp() > 1 ? static_cast<double>(expert) / static_cast<double>(shape.edp()) : 0);
    row("ZeRO-1 all-gather (own shard)", gathered, zero_expect, "1/dp of dense + 1/edp of expert parameters");
    double a2a = static_cast<double>(mesh.ep->stats().bytes["all_to_all"]);
    double a2a_expect = ep > 1 ? 4.0 * tokens_local * static_cast<double>(cfg.num_experts_per_tok * cfg.hidden_size * 4) *
                                     static_cast<double>(ep - 1) / static_cast<double>(ep) * static_cast<double>(moe_layers)
                               : 0;
    row("ep all-to-all (rows + counts)", a2a, a2a_expect, "uniform-routing expectation; measured follows the actual routing");
    row("pp send (activations, gradients)", static_cast<double>(mesh.pp->stats().bytes["send"]),
        pp > 1 ? static_cast<double>(micro * b * seq * cfg.hidden_size * 4) * (mesh.first_stage() ? 1 : 2) : 0,
        "rank 0 is the first stage: activations out only");
    std::printf("model bytes on rank 0: %lld (dense %lld, experts %lld)\n", static_cast<long long>(all),
                static_cast<long long>(dense), static_cast<long long>(expert));
  } catch (const std::exception& e) {
    mpi.fail(e.what());
  }
  return 0;
}
