// `mlamoe smoke`: the library's end-to-end smoke run until the MLA+MoE model lands: a one-block
// byte-level causal attention LM (embedding, RMSNorm, attention with interleaved RoPE on part of
// each head, SwiGLU MLP, untied head, cross-entropy) trained with Adam on a text file.
// It exercises every core op family through autograd on real text and prints the loss falling.
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

int run_smoke(const std::vector<std::string>& args);
int print_version();

}  // namespace mlamoe
