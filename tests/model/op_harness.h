// The table-driven op test harness (CONTRIBUTING.md "Code habits" item 3). Each row of the table in test_ops.cpp names an
// op, its inputs and parameters, and how to call it. Every row is checked two ways:
//   1. finite differences: the op runs in f64; the analytic gradient of L = Σ out ⊙ R (R random)
//      is compared with central differences of L, element by element;
//   2. PyTorch: the op runs in f32; tests/reference/ops_reference.py recomputes outputs and
//      gradients in f64 with torch from the same f32 inputs, at test time, in one process for all rows.
// Errors are normalised: max|ours − ref| / max|ref| per tensor (so near-zero elements of a tensor
// with O(1) entries do not blow up a relative error). A failing row prints op, shapes and both errors.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe::test {

enum class InputKind {
  Normal,    // N(0, 1)
  Positive,  // U(0.5, 1.5)
  Distinct,  // a random permutation of well-separated values (no ties, FD-safe for sort-like ops)
  Index,     // integers in [lo, hi)
};

struct InputSpec {
  Shape shape;
  InputKind kind = InputKind::Normal;
  bool requires_grad = true;
  int64_t lo = 0, hi = 0;  // Index only
};

struct OpCase {
  std::string op;         // the name the PyTorch reference knows it by
  nlohmann::json params;  // passed to the op and to the reference
  std::vector<InputSpec> inputs;
  // Builds the outputs from inputs (f32 or f64, same order as `inputs`).
  std::function<std::vector<Tensor>(const std::vector<Tensor>&, const nlohmann::json&)> fn;
  double fd_tol = 1e-6;       // normalised error bound of analytic vs finite-difference gradient (f64)
  double torch_tol = 1e-4;    // normalised error bound vs PyTorch (f32 op vs f64 reference)
  bool fd = true;             // false for ops that are piecewise constant (casts)
  std::string label() const;  // op and input shapes, also the gtest name
};

const std::vector<OpCase>& op_table();  // defined in test_ops.cpp

struct CaseInputs {
  std::vector<Tensor> inputs;    // in the requested dtype
  std::vector<Tensor> upstream;  // one R per floating output
};

// Deterministic inputs for a case (same values for f32 and f64 up to rounding).
CaseInputs make_inputs(const OpCase& c, size_t case_index, DType dtype);

// One forward + backward of a case: its inputs, outputs and the inputs' gradients (undefined for
// inputs that take none).
struct Evaluation {
  CaseInputs ci;
  std::vector<Tensor> outputs;
  std::vector<Tensor> grads;
};
Evaluation evaluate(const OpCase& c, size_t case_index, DType dtype);

struct Compare {
  double max_abs = 0, max_rel = 0;
};
Compare compare(const std::vector<double>& ours, const std::vector<double>& ref);

struct CheckResult {
  std::string failure;   // empty when the case passed
  double worst_rel = 0;  // largest normalised error seen over all compared tensors
};

CheckResult check_finite_differences(const OpCase& c, size_t case_index);

// f32 outputs and gradients must be bitwise identical with 1 thread and with `threads` threads
// (every reduction has a fixed order), so results never depend on the machine's core count.
CheckResult check_thread_determinism(const OpCase& c, size_t case_index, int threads);

// The case on a CUDA device (the running backend: the GPU, or the SIMT emulator) against the same
// case on the CPU, both f32 from the same inputs: outputs and gradients within `tol` (normalised).
// The CUDA case runs twice, the emulator's thread order shuffled from different seeds, and must
// give the same bits both times (kernels may not depend on the order of unsynchronised threads).
CheckResult check_cuda_against_cpu(const OpCase& c, size_t case_index, double tol);

// Runs the PyTorch reference once for every case and returns one result per case.
std::vector<CheckResult> check_against_torch(const std::vector<OpCase>& cases);

}  // namespace mlamoe::test
