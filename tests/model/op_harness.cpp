#include "tests/model/op_harness.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include "model/ops/ops.h"
#include "model/tensor/simt/simt.h"

namespace mlamoe::test {

std::string OpCase::label() const {
  std::string s = op;
  for (const InputSpec& in : inputs) {
    s += "_";
    for (size_t i = 0; i < in.shape.size(); ++i) {
      if (i) s += "x";
      s += std::to_string(in.shape[i]);
    }
    if (in.shape.empty()) s += "scalar";
  }
  return s;
}

CaseInputs make_inputs(const OpCase& c, size_t case_index, DType dtype) {
  Rng rng(1000 + 7919 * case_index);
  CaseInputs out;
  for (const InputSpec& in : c.inputs) {
    int64_t n = shape_numel(in.shape);
    if (in.kind == InputKind::Index) {
      std::vector<int64_t> v(n);
      for (auto& x : v) x = rng.randint(in.lo, in.hi);
      out.inputs.push_back(Tensor::from_vector(v, in.shape));
      continue;
    }
    std::vector<double> v(n);
    if (in.kind == InputKind::Distinct) {
      std::iota(v.begin(), v.end(), 0.0);
      for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[rng.randint(0, i + 1)]);
      for (auto& x : v) x = (x - n / 2.0) * 0.25;  // gaps of 0.25 ≫ the FD step
    } else {
      for (auto& x : v) x = in.kind == InputKind::Positive ? 0.5 + rng.uniform() : rng.normal();
    }
    Tensor t = Tensor::from_vector(v, in.shape).to(dtype);
    if (in.requires_grad) t.set_requires_grad(true);
    out.inputs.push_back(t);
  }
  // Upstream gradients: one per floating output, from the outputs' shapes.
  std::vector<Tensor> outs;
  {
    NoGrad g;
    outs = c.fn(out.inputs, c.params);
  }
  for (const Tensor& o : outs) {
    if (!is_floating(o.dtype())) {
      out.upstream.push_back(Tensor());
      continue;
    }
    std::vector<double> r(o.numel());
    for (auto& x : r) x = rng.normal();
    out.upstream.push_back(Tensor::from_vector(r, o.shape()).to(dtype));
  }
  return out;
}

Compare compare(const std::vector<double>& ours, const std::vector<double>& ref) {
  Compare c;
  double scale = 0;
  for (double r : ref) scale = std::max(scale, std::fabs(r));
  for (size_t i = 0; i < ours.size() && i < ref.size(); ++i) c.max_abs = std::max(c.max_abs, std::fabs(ours[i] - ref[i]));
  c.max_rel = c.max_abs / std::max(scale, 1e-12);
  if (ours.size() != ref.size()) c.max_rel = c.max_abs = INFINITY;
  return c;
}

namespace {

// L = Σ_o Σ out_o ⊙ R_o as a recorded graph (backward gives each input's gradient for upstream R);
// undefined when no output carries a gradient.
Tensor upstream_loss(const std::vector<Tensor>& outs, const std::vector<Tensor>& upstream) {
  Tensor loss;
  for (size_t o = 0; o < outs.size(); ++o) {
    if (!upstream[o].defined() || !outs[o].requires_grad()) continue;
    Tensor term = sum(mul(outs[o], upstream[o]));
    loss = loss.defined() ? add(loss, term) : term;
  }
  return loss;
}

// The same L evaluated in double without a graph (finite differences).
double weighted_loss(const std::vector<Tensor>& outs, const std::vector<Tensor>& upstream) {
  double l = 0;
  for (size_t o = 0; o < outs.size(); ++o) {
    if (!upstream[o].defined()) continue;
    auto a = outs[o].to_vector<double>(), r = upstream[o].to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) l += a[i] * r[i];
  }
  return l;
}

std::string fmt_failure(const OpCase& c, const std::string& what, const Compare& cmp, double tol) {
  std::ostringstream os;
  os << c.label() << " params=" << c.params.dump() << ": " << what << " max abs err " << cmp.max_abs << ", max rel err "
     << cmp.max_rel << " > tolerance " << tol;
  return os.str();
}

}  // namespace

CheckResult check_finite_differences(const OpCase& c, size_t case_index) {
  CaseInputs ci = make_inputs(c, case_index, DType::F64);
  std::vector<Tensor> outs = c.fn(ci.inputs, c.params);
  // Analytic: backward with the upstream gradients (a sum of outputs weighted by R).
  Tensor loss = upstream_loss(outs, ci.upstream);
  if (!loss.defined()) return {c.label() + ": no output requires grad"};
  loss.backward();
  CheckResult res;
  const double h = 1e-6;
  for (size_t i = 0; i < ci.inputs.size(); ++i) {
    Tensor x = ci.inputs[i];
    if (!c.inputs[i].requires_grad) continue;
    if (!x.grad().defined()) return {c.label() + ": input " + std::to_string(i) + " received no gradient"};
    std::vector<double> analytic = x.grad().to_vector<double>(), numeric(x.numel());
    double* p = x.data<double>();
    NoGrad g;
    for (int64_t e = 0; e < x.numel(); ++e) {
      double keep = p[e];
      p[e] = keep + h;
      double lp = weighted_loss(c.fn(ci.inputs, c.params), ci.upstream);
      p[e] = keep - h;
      double lm = weighted_loss(c.fn(ci.inputs, c.params), ci.upstream);
      p[e] = keep;
      numeric[e] = (lp - lm) / (2 * h);
    }
    Compare cmp = compare(analytic, numeric);
    res.worst_rel = std::max(res.worst_rel, cmp.max_rel);
    if (!(cmp.max_rel <= c.fd_tol))
      res.failure += fmt_failure(c, "gradient of input " + std::to_string(i) + " vs finite differences:", cmp, c.fd_tol) + "\n";
  }
  return res;
}

Evaluation evaluate(const OpCase& c, size_t case_index, DType dtype) {
  Evaluation ev{make_inputs(c, case_index, dtype), {}, {}};
  ev.outputs = c.fn(ev.ci.inputs, c.params);
  Tensor loss = upstream_loss(ev.outputs, ev.ci.upstream);
  if (loss.defined()) loss.backward();
  for (const Tensor& x : ev.ci.inputs) ev.grads.push_back(x.requires_grad() ? x.grad() : Tensor());
  return ev;
}

CheckResult check_thread_determinism(const OpCase& c, size_t case_index, int threads) {
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Evaluation one = evaluate(c, case_index, DType::F32);
  omp_set_num_threads(threads);
  Evaluation many = evaluate(c, case_index, DType::F32);
  omp_set_num_threads(saved);
  CheckResult res;
  auto same = [&](const Tensor& a, const Tensor& b, const std::string& what) {
    if (a.defined() != b.defined()) {
      res.failure += c.label() + ": " + what + " defined with one thread count only\n";
      return;
    }
    if (!a.defined()) return;
    Compare cmp = compare(a.to_vector<double>(), b.to_vector<double>());
    res.worst_rel = std::max(res.worst_rel, cmp.max_rel);
    if (cmp.max_abs != 0)
      res.failure += fmt_failure(c, what + " with 1 vs " + std::to_string(threads) + " threads:", cmp, 0.0) + "\n";
  };
  for (size_t o = 0; o < one.outputs.size(); ++o) same(one.outputs[o], many.outputs[o], "output " + std::to_string(o));
  for (size_t i = 0; i < one.grads.size(); ++i) same(one.grads[i], many.grads[i], "gradient of input " + std::to_string(i));
  return res;
}

namespace {

// evaluate() with the inputs and upstream gradients moved to `device` (as leaves there).
Evaluation evaluate_on(const OpCase& c, size_t case_index, Device device) {
  Evaluation ev{make_inputs(c, case_index, DType::F32), {}, {}};
  for (Tensor& x : ev.ci.inputs) {
    bool rg = x.requires_grad();
    x = x.detach().to(device);
    if (rg) x.set_requires_grad(true);
  }
  for (Tensor& u : ev.ci.upstream)
    if (u.defined()) u = u.to(device);
  ev.outputs = c.fn(ev.ci.inputs, c.params);
  Tensor loss = upstream_loss(ev.outputs, ev.ci.upstream);
  if (loss.defined()) loss.backward();
  for (const Tensor& x : ev.ci.inputs) ev.grads.push_back(x.requires_grad() ? x.grad() : Tensor());
  return ev;
}

}  // namespace

CheckResult check_cuda_against_cpu(const OpCase& c, size_t case_index, double tol) {
  Evaluation cpu = evaluate_on(c, case_index, Device::cpu());
  simt::set_launch_seed(1);
  Evaluation gpu = evaluate_on(c, case_index, Device::cuda(0));
  simt::set_launch_seed(977);
  Evaluation again = evaluate_on(c, case_index, Device::cuda(0));
  CheckResult res;
  auto check = [&](const Tensor& ours, const Tensor& other, const Tensor& ref, const std::string& what) {
    if (ours.defined() != ref.defined()) {
      res.failure += c.label() + ": " + what + " defined on one device only\n";
      return;
    }
    if (!ours.defined()) return;
    if (!ours.device().is_cuda()) res.failure += c.label() + ": " + what + " is on " + ours.device().str() + ", not the GPU\n";
    if (ours.shape() != ref.shape()) {
      res.failure += c.label() + ": " + what + " shape " + shape_str(ours.shape()) + " vs CPU " + shape_str(ref.shape()) + "\n";
      return;
    }
    // On the host first: the device converts only between some dtypes (not i64 -> f64, topk's indices).
    std::vector<double> v = ours.to(Device::cpu()).to_vector<double>();
    Compare cmp = compare(v, ref.to_vector<double>());
    res.worst_rel = std::max(res.worst_rel, cmp.max_rel);
    if (!(cmp.max_rel <= tol)) res.failure += fmt_failure(c, what + " CUDA vs CPU:", cmp, tol) + "\n";
    Compare rerun = compare(v, other.to(Device::cpu()).to_vector<double>());
    if (rerun.max_abs != 0)
      res.failure += fmt_failure(c, what + " CUDA run 1 vs run 2 (other thread orders):", rerun, 0.0) + "\n";
  };
  for (size_t o = 0; o < cpu.outputs.size(); ++o)
    check(gpu.outputs[o], again.outputs[o], cpu.outputs[o], "output " + std::to_string(o));
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    check(gpu.grads[i], again.grads[i], cpu.grads[i], "gradient of input " + std::to_string(i));
  return res;
}

namespace {

nlohmann::json tensor_json(const Tensor& t) {
  nlohmann::json j;
  j["shape"] = t.shape();
  j["dtype"] = dtype_name(t.dtype());
  if (is_floating(t.dtype())) {
    j["data"] = t.to_vector<double>();
  } else {
    j["data"] = t.to_vector<int64_t>();
  }
  return j;
}

std::vector<double> json_values(const nlohmann::json& j) { return j.at("data").get<std::vector<double>>(); }

}  // namespace

std::vector<CheckResult> check_against_torch(const std::vector<OpCase>& cases) {
  std::vector<CheckResult> results(cases.size());
  nlohmann::json request = nlohmann::json::array();
  std::vector<std::vector<Tensor>> our_outs(cases.size()), our_grads(cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    const OpCase& c = cases[k];
    Evaluation ev = evaluate(c, k, DType::F32);
    const CaseInputs& ci = ev.ci;
    nlohmann::json jc;
    jc["op"] = c.op;
    jc["label"] = c.label();
    jc["params"] = c.params;
    for (size_t i = 0; i < ci.inputs.size(); ++i) {
      nlohmann::json ji = tensor_json(ci.inputs[i]);
      ji["requires_grad"] = c.inputs[i].requires_grad;
      jc["inputs"].push_back(ji);
    }
    for (const Tensor& u : ci.upstream) jc["upstream"].push_back(u.defined() ? tensor_json(u) : nlohmann::json());
    our_outs[k] = ev.outputs;
    our_grads[k] = ev.grads;
    request.push_back(jc);
  }

  std::string dir = std::string(MLAMOE_TEST_TMPDIR);
  std::string in_path = dir + "/ops_request.json", out_path = dir + "/ops_reference.json";
  std::ofstream(in_path) << request.dump();
  std::string cmd = std::string(MLAMOE_TORCH_PYTHON) + " " + MLAMOE_SOURCE_DIR + "/tests/reference/ops_reference.py " + in_path +
                    " " + out_path + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string log;
  char buf[512];
  while (pipe && fgets(buf, sizeof buf, pipe)) log += buf;
  int rc = pipe ? pclose(pipe) : -1;
  if (rc != 0) {
    for (auto& r : results) r.failure = "PyTorch reference failed (" + cmd + "):\n" + log;
    return results;
  }
  nlohmann::json reply = nlohmann::json::parse(std::ifstream(out_path));
  for (size_t k = 0; k < cases.size(); ++k) {
    const OpCase& c = cases[k];
    const nlohmann::json& jr = reply.at(k);
    if (jr.contains("error")) {
      results[k].failure = c.label() + ": reference raised: " + jr["error"].get<std::string>();
      continue;
    }
    std::string fail;
    const auto& outs = jr.at("outputs");
    if (outs.size() != our_outs[k].size()) {
      results[k].failure = c.label() + ": reference returned " + std::to_string(outs.size()) + " outputs, ours " +
                           std::to_string(our_outs[k].size());
      continue;
    }
    for (size_t o = 0; o < outs.size(); ++o) {
      const Tensor& ours = our_outs[k][o];
      if (outs[o].at("shape").get<Shape>() != ours.shape()) {
        fail += c.label() + ": output " + std::to_string(o) + " shape " + shape_str(ours.shape()) + " vs reference " +
                outs[o].at("shape").dump() + "\n";
        continue;
      }
      Compare cmp = compare(ours.to_vector<double>(), json_values(outs[o]));
      double tol = is_floating(ours.dtype()) ? c.torch_tol : 0.0;
      results[k].worst_rel = std::max(results[k].worst_rel, cmp.max_rel);
      if (!(cmp.max_rel <= tol)) fail += fmt_failure(c, "output " + std::to_string(o) + " vs PyTorch:", cmp, tol) + "\n";
    }
    const auto& grads = jr.at("grads");
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].is_null()) continue;
      if (!our_grads[k][i].defined()) {
        fail += c.label() + ": input " + std::to_string(i) + " got no gradient, PyTorch has one\n";
        continue;
      }
      Compare cmp = compare(our_grads[k][i].to_vector<double>(), json_values(grads[i]));
      results[k].worst_rel = std::max(results[k].worst_rel, cmp.max_rel);
      if (!(cmp.max_rel <= c.torch_tol))
        fail += fmt_failure(c, "gradient of input " + std::to_string(i) + " vs PyTorch:", cmp, c.torch_tol) + "\n";
    }
    results[k].failure = fail;
  }
  return results;
}

}  // namespace mlamoe::test
