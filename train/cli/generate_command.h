// `mlamoe generate --checkpoint weights.h5 --prompt "..." [--tokenizer byte|tokenizer.json]`: greedy
// decoding with the absorbed-MLA KV cache (model/README.md §2.6). Prints the cache bytes per token next to the
// formula value, and with --verify checks every token against a full forward recomputed from
// scratch at each step.
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

int run_generate_command(const std::vector<std::string>& args);

}  // namespace mlamoe
