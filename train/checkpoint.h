// Model weights in one HDF5 file (DESIGN.md "Checkpoint"): one dataset per logical tensor under
// its Hugging Face name with its full shape (weights and correction biases), plus the run config
// and step as attributes. Written under a temporary name and renamed when complete, so a crash
// never leaves a damaged file under the final name. Optimizer state and resume come with the
// checkpoint issue; this is the part `generate` and `eval` need.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "model/modules/parameters.h"

namespace mlamoe {

void save_weights(const std::string& path, const ParameterStore& params, const nlohmann::json& config, int64_t step);

// Reads the config attribute of a weights file (to build the model before loading into it).
nlohmann::json read_weights_config(const std::string& path);
// Loads every tensor of `params` from the file; a missing tensor or a shape mismatch is an error
// naming the tensor. Returns the step.
int64_t load_weights(const std::string& path, ParameterStore& params);

}  // namespace mlamoe
