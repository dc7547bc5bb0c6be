// `mlamoe data <command>`: dataset tools. Now: `prepare` (text files to an HDF5 token dataset).
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

// args: everything after `data`. Returns the exit code; throws mlamoe::Error on bad input.
int run_data_command(const std::vector<std::string>& args);

}  // namespace mlamoe
