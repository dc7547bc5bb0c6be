// The expert-load report as one self-contained HTML file (`mlamoe experts RUN_DIR --html FILE`):
// the run's numbers embedded as JSON in a <script type="application/json"> block and drawn by
// inline JavaScript on <canvas> and inline SVG, so it opens offline (no CDN, no network). Shows
// the last step per layer, the mean load per layer × expert over the last window, the load per
// expert over steps for every MoE layer, MaxVio, the correction bias, the EP-rank load and the
// loss / lr / throughput curves of metrics.jsonl. Long runs are downsampled to at most ~1000
// columns (the page says how many steps a column holds).
#pragma once
#include <string>

#include "train/monitor/run_logs.h"

namespace mlamoe {

// Writes `path` through a temporary file and a rename, so a browser reloading it during
// --follow never sees half a file. Throws mlamoe::Error when it cannot be written.
void write_html_report(const RunLogs& logs, const std::string& path);

}  // namespace mlamoe
