// `mlamoe experts RUN_DIR [--window N] [--html FILE] [--follow [--follow-seconds S]]`: the viewer of
// the expert-load monitor. Prints a terminal summary of a run directory's experts.jsonl (worst
// layers by MaxVio over the last window, their trend, dead experts, bias range, EP straggler
// figure, and what was skipped) and optionally writes the self-contained HTML report
// (train/monitor/html_report.h). --follow re-reads the logs every second and reprints when steps arrive.
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

int run_experts_command(const std::vector<std::string>& args);

}  // namespace mlamoe
