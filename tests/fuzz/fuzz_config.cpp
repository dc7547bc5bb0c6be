// A run config file and `--set` overrides, through the functions `mlamoe train` uses:
// load_run_config (read_json_file, apply_overrides, parse_run_config), then what --dry-run and the
// trainer derive from it (model sizes, architecture fields, the learning-rate schedule).
//
// Input: the first line holds the overrides, separated by tabs (each one a `--set` argument,
// "train.lr=3e-4"; an empty line for none); the rest is the config file.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model_size.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/lr_schedule.h"
#include "train/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string first = nl == std::string::npos ? input : input.substr(0, nl);
  std::string body = nl == std::string::npos ? std::string() : input.substr(nl + 1);
  std::vector<std::string> overrides;
  for (size_t start = 0; !first.empty() && start <= first.size();) {
    size_t tab = first.find('\t', start);
    overrides.push_back(first.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  std::string path = mlamoe::fuzz::write_temp(body, "config.json");

  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_config", [&] {
    mlamoe::RunConfig rc = mlamoe::load_run_config(path, overrides);
    mlamoe::ModelSize size = mlamoe::model_size(rc.model, rc.data.seq_len);
    (void)size;
    nlohmann::json arch = mlamoe::architecture_fields(rc.model);
    (void)arch.dump();
    mlamoe::LrSchedule s = mlamoe::lr_schedule_of(rc.train);
    for (int64_t step : {int64_t{0}, s.warmup_steps, s.total_steps / 2, std::max<int64_t>(s.total_steps - 1, 0), s.total_steps})
      (void)s.at(step);
  });
  return 0;
}
