// The backward engine: walks the graph from a root in reverse topological order.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// dL/droot = grad (ones for a scalar root when grad is undefined). Each node runs once, after all
// of its consumers have contributed their gradient; gradients reaching a leaf are added into
// leaf.grad. Without retain_graph, each node's saved tensors are released as soon as it has run.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace mlamoe
