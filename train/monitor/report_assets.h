// The expert-load report's assets (train/monitor/report/), embedded at build time by
// embed_assets.cmake into a generated source: NUL-terminated, byte for byte the files.
#pragma once

namespace mlamoe {

extern const char kReportCss[];       // report/report.css: the page's stylesheet
extern const char kReportBodyHtml[];  // report/report_body.html: the page's sections, empty
extern const char kReportJs[];        // report/report.js: draws the sections from the embedded JSON

}  // namespace mlamoe
