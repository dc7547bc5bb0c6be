#include "model/autograd/engine.h"

#include <chrono>
#include <map>
#include <unordered_map>
#include <vector>

#include "model/autograd/node.h"
#include "model/ops/elementwise.h"

namespace mlamoe {

namespace {
thread_local bool t_grad_enabled = true;

std::shared_ptr<Node> edge_of(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->grad_accumulator) impl->grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl->grad_accumulator;
}

// Sum of two gradients as a new tensor (never in place: one gradient tensor may be handed to
// several edges, e.g. both inputs of an add). bf16 gradients (a bf16 operand read by two
// products) are summed in f32, so the sum is the one their f32 casts would have given.
Tensor sum_grads(const Tensor& a, const Tensor& b) {
  NoGrad guard;
  auto wide = [](const Tensor& g) { return g.dtype() == DType::BF16 ? g.to(DType::F32) : g; };
  return add(wide(a), wide(b));
}
}  // namespace

Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack = std::move(next);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    if (n && n.use_count() == 1) {  // the last owner: take its edges before it is destroyed
      for (auto& e : n->next) stack.push_back(std::move(e));
      n->next.clear();
    }
  }
}

bool grad_enabled() { return t_grad_enabled; }
GradMode::GradMode(bool on) : previous_(t_grad_enabled) { t_grad_enabled = on; }
GradMode::~GradMode() { t_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

namespace {
bool profiling = false;
std::map<std::string, std::pair<double, int64_t>> profile_table;  // backward, by node name
std::map<std::string, std::pair<double, int64_t>> forward_table;  // forward, by op family
bool forward_active = false;
std::chrono::steady_clock::time_point forward_mark;

void charge_forward(const char* node_name) {
  auto now = std::chrono::steady_clock::now();
  std::string family = node_name;
  if (family.size() > 8 && family.compare(family.size() - 8, 8, "Backward") == 0) family.resize(family.size() - 8);
  auto& slot = forward_table[family];
  slot.first += std::chrono::duration<double>(now - forward_mark).count();
  ++slot.second;
  forward_mark = now;
}
}  // namespace

void forward_profile_begin() {
  forward_active = profiling;
  forward_mark = std::chrono::steady_clock::now();
}
void forward_profile_end() { forward_active = false; }

std::vector<std::pair<std::string, std::pair<double, int64_t>>> forward_profile(bool reset) {
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> out(forward_table.begin(), forward_table.end());
  if (reset) forward_table.clear();
  return out;
}

void connect(Tensor& out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs) {
  if (forward_active) charge_forward(node->name());
  node->next.clear();
  for (const Tensor& t : inputs) node->next.push_back(edge_of(t));
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

void connect(Tensor& out, std::shared_ptr<Node> node, std::initializer_list<Tensor> inputs) {
  connect(out, std::move(node), std::vector<Tensor>(inputs));
}

namespace {
thread_local GradReadyHook grad_ready_hook;
}  // namespace

void set_backward_profiling(bool on) { profiling = on; }

std::vector<std::pair<std::string, std::pair<double, int64_t>>> backward_profile(bool reset) {
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> out(profile_table.begin(), profile_table.end());
  if (reset) profile_table.clear();
  return out;
}

void set_grad_ready_hook(GradReadyHook hook) { grad_ready_hook = std::move(hook); }

std::vector<Tensor> AccumulateGrad::backward(const Tensor& dout) {
  std::shared_ptr<TensorImpl> impl = leaf.lock();
  if (!impl) return {};
  MLAMOE_CHECK(dout.shape() == impl->shape,
               "AccumulateGrad: gradient " << shape_str(dout.shape()) << " does not match leaf " << shape_str(impl->shape));
  NoGrad guard;
  if (!impl->grad.defined()) {
    // Keep dout itself when nothing else can see its memory: the engine's handle is the only one
    // on its impl (not the caller's seed, not another edge's), the impl the only owner of the
    // storage (no view), a plain layout. Otherwise take a copy.
    bool sole_owner = dout.impl_ptr().use_count() == 1 && dout.storage().use_count() == 1 && dout.is_contiguous() &&
                      dout.impl()->offset == 0 &&
                      dout.storage()->nbytes() == static_cast<size_t>(dout.numel()) * dtype_size(dout.dtype());
    impl->grad = sole_owner ? dout.detach() : dout.clone();
  } else {
    add_(impl->grad, dout);
  }
  if (grad_ready_hook) grad_ready_hook(impl.get());
  return {};
}

namespace {
// Nested backwards (activation recomputation runs one inside a node's backward): their time is
// taken out of the enclosing node's row of the profile, where their own nodes already appear.
thread_local int backward_depth = 0;
thread_local double nested_backward_seconds = 0;
}  // namespace

namespace {
// The engine's ready nodes, one stack per Node::BackwardOrder.
class ReadyNodes {
 public:
  void push(Node* n) { stacks_[static_cast<int>(n->backward_order())].push_back(n); }
  bool empty() const {
    for (const auto& s : stacks_)
      if (!s.empty()) return false;
    return true;
  }
  Node* pop() {  // from the first non-empty stack: the enum lists the orders as they run
    for (auto& s : stacks_) {
      if (s.empty()) continue;
      Node* n = s.back();
      s.pop_back();
      return n;
    }
    return nullptr;
  }

 private:
  std::vector<Node*> stacks_[3];
};
}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  auto t_begin = std::chrono::steady_clock::now();
  ++backward_depth;
  struct Leave {
    std::chrono::steady_clock::time_point begin;
    ~Leave() {
      if (--backward_depth > 0)
        nested_backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    }
  } leave{t_begin};
  MLAMOE_CHECK(root.defined(), "backward: called on an undefined tensor");
  MLAMOE_CHECK(root.requires_grad(),
               "backward: the tensor does not require grad (no parameter reaches it, or it was computed under NoGrad)");
  Tensor seed = grad;
  if (!seed.defined()) {
    MLAMOE_CHECK(root.numel() == 1, "backward: a gradient must be given for a non-scalar root " << shape_str(root.shape()));
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  MLAMOE_CHECK(seed.shape() == root.shape(),
               "backward: gradient " << shape_str(seed.shape()) << " does not match root " << shape_str(root.shape()));
  MLAMOE_CHECK(seed.device() == root.device(),
               "backward: gradient on " << seed.device().str() << ", root on " << root.device().str());

  NoGrad no_grad;  // backward computations are never recorded (no double backward)
  std::shared_ptr<Node> start = edge_of(root);
  // Count, for every node, how many edges point to it from nodes reachable from the root.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{start.get()};
  pending[start.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next) {
      if (!e) continue;
      auto [it, fresh] = pending.try_emplace(e.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(e.get());
    }
  }

  // Kahn's algorithm: a node runs when every consumer has delivered its gradient. Among the ready
  // nodes, those that start communication go first and those that wait for it last (Node::
  // backward_order); within each kind, the last ready runs first (depth-first).
  std::unordered_map<Node*, Tensor> grads;
  grads[start.get()] = seed;
  ReadyNodes ready;
  ready.push(start.get());
  while (!ready.empty()) {
    Node* n = ready.pop();
    std::vector<Tensor> dins;
    if (auto it = grads.find(n); it != grads.end()) {
      MLAMOE_CHECK(!n->released, "backward: the graph through "
                                     << n->name()
                                     << " was already used by a backward and released; pass retain_graph=true to the first one");
      Tensor dout = std::move(it->second);
      grads.erase(it);
      if (profiling) {
        double nested_before = nested_backward_seconds;
        auto t0 = std::chrono::steady_clock::now();
        dins = n->backward(dout);
        auto& slot = profile_table[n->name()];
        slot.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() -
                      (nested_backward_seconds - nested_before);
        ++slot.second;
      } else {
        dins = n->backward(dout);
      }
    }
    MLAMOE_CHECK(dins.empty() || dins.size() == n->next.size(),
                 "autograd: " << n->name() << " returned " << dins.size() << " gradients for " << n->next.size() << " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* e = n->next[i].get();
      if (!e) continue;
      if (i < dins.size() && dins[i].defined()) {
        auto it = grads.find(e);
        if (it == grads.end()) {
          grads.emplace(e, std::move(dins[i]));
        } else {
          it->second = sum_grads(it->second, dins[i]);
        }
      }
      // A node whose consumers all delivered nothing still runs (as a no-op), so that the count of
      // every node below it still reaches zero.
      if (--pending[e] == 0) ready.push(e);
    }
    if (!retain_graph && !dynamic_cast<AccumulateGrad*>(n)) {
      n->release();
      n->released = true;
    }
  }
}

}  // namespace mlamoe
