// The hook through which expert parallelism plugs into the MoE layer (DESIGN.md: `model` knows
// nothing of MPI; `parallel` supplies the communicating implementation). A dispatcher moves the
// permuted token rows to the ranks that hold their experts and brings the expert outputs back,
// in three phases each way (STYLE.md item 7): local pre-processing, pure communication, local
// post-processing. Both directions are autograd ops: the backward of dispatch is a combine of the
// gradients and vice versa.
//
// Dimension letters: A assignments on this rank (rows grouped by global expert), R rows received
// for this rank's experts (grouped by local expert), d hidden.
#pragma once
#include <memory>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

struct Dispatched {
  Tensor rows;                        // [R, d] grouped by local expert
  std::vector<int64_t> local_counts;  // [N / ep] rows per local expert
  std::shared_ptr<const void> plan;   // what combine needs to route the outputs back
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;
  virtual int64_t ep_size() const = 0;
  virtual int64_t ep_rank() const = 0;
  // xp [A, d] grouped by global expert, counts [N] rows per global expert.
  virtual Dispatched dispatch(const Tensor& xp, const std::vector<int64_t>& counts) = 0;
  // y [R, d] (the experts' outputs, same order as Dispatched::rows) -> [A, d] in xp's order.
  virtual Tensor combine(const Tensor& y, const Dispatched& d) = 0;
};

// One process holds every expert: dispatch and combine are the identity.
class LocalDispatcher final : public ExpertDispatcher {
 public:
  int64_t ep_size() const override { return 1; }
  int64_t ep_rank() const override { return 0; }
  Dispatched dispatch(const Tensor& xp, const std::vector<int64_t>& counts) override { return {xp, counts, nullptr}; }
  Tensor combine(const Tensor& y, const Dispatched&) override { return y; }
};

}  // namespace mlamoe
