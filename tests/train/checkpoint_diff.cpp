// checkpoint_diff A.h5 B.h5 [TOL] [--only SUBSTR]: loads two checkpoints into single-process
// models built from B's config (so A may hold more, e.g. MTP modules B dropped), with optimizer
// state when both have it, and compares every tensor (or those whose name contains SUBSTR):
// exit 0 when all are bitwise equal (TOL omitted or 0) or within max|a − b| ≤ TOL·max|b| per
// tensor, else 1, naming the worst tensors. The resume, resharding and fine-tuning tests use it.
#include <cmath>
#include <cstdio>
#include <string>

#include "data/h5_util.h"
#include "train/checkpoint.h"

using namespace mlamoe;

namespace {

double diff(const Tensor& a, const Tensor& b, double* mag) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double d = 0;
  *mag = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i])), *mag = std::max(*mag, std::abs(y[i]));
  return d;
}

bool has_optimizer(const std::string& path) {
  H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  return f.valid() && h5_read_int_attribute(f.get(), "has_optimizer", path) == 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: checkpoint_diff A.h5 B.h5 [TOL]\n");
    return 2;
  }
  try {
    h5_silence_errors();
    std::string pa = argv[1], pb = argv[2], only;
    double tol = 0.0;
    for (int i = 3; i < argc; ++i) {
      if (std::string(argv[i]) == "--only" && i + 1 < argc)
        only = argv[++i];
      else
        tol = std::stod(argv[i]);
    }
    ModelConfig cfg = parse_model_config(read_checkpoint_config(pb), pb);
    DeepSeekModel ma(cfg, 0), mb(cfg, 0);
    bool opt = only.empty() && has_optimizer(pa) && has_optimizer(pb);
    AdamW oa(ma.params, {}), ob(mb.params, {});
    TrainState sa = load_checkpoint(pa, ma, opt ? &oa : nullptr, nullptr);
    TrainState sb = load_checkpoint(pb, mb, opt ? &ob : nullptr, nullptr);
    int bad = 0;
    auto check = [&](const std::string& name, const Tensor& a, const Tensor& b) {
      if (!only.empty() && name.find(only) == std::string::npos) return;
      double mag = 0, d = diff(a, b, &mag);
      if (tol == 0.0 ? d != 0.0 : d > tol * mag) {
        if (++bad <= 10) std::printf("differs: %s by %.3g (max |b| %.3g)\n", name.c_str(), d, mag);
      }
    };
    for (const auto& p : ma.params.all()) check(p.name, p.tensor, mb.params.get(p.name));
    if (opt)
      for (size_t i = 0; i < oa.slots().size(); ++i) {
        check("exp_avg/" + oa.slots()[i].name, oa.slots()[i].m, ob.slots()[i].m);
        check("exp_avg_sq/" + oa.slots()[i].name, oa.slots()[i].v, ob.slots()[i].v);
      }
    if (only.empty() &&
        (sa.step != sb.step || (opt && (sa.optimizer_steps != sb.optimizer_steps || sa.loader.epoch != sb.loader.epoch ||
                                        sa.loader.index != sb.loader.index || sa.tokens_seen != sb.tokens_seen)))) {
      std::printf("differs: progress (step %lld vs %lld)\n", static_cast<long long>(sa.step), static_cast<long long>(sb.step));
      ++bad;
    }
    std::printf("checkpoint_diff: %s (%s%s)\n", bad ? "DIFFERENT" : (tol == 0.0 ? "identical" : "within tolerance"),
                opt ? "weights, biases, moments, progress" : "weights and biases", tol == 0.0 ? ", bitwise" : "");
    return bad ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_diff: %s\n", e.what());
    return 2;
  }
}
