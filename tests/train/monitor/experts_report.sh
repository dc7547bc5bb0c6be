#!/usr/bin/env bash
# experts_report.sh MLAMOE CONFIG DATA.h5 WORKDIR: the expert-load viewer end to end on a short run.
# `mlamoe experts RUN` names every MoE layer; --html writes one page with no network reference;
# headless Chromium renders it (the DOM after the page's script ran: one heatmap row per MoE layer,
# the table and the window heatmap equal to the log's numbers) and takes a screenshot. Bad input:
# a cut last log line is skipped and reported, a missing or half-written run directory is one
# error line. A statistics-only log (train.experts_log=stats, as large models write it) takes the
# per-expert counts and bias from experts.h5: the same seed gives the same report as the full log; a
# damaged or missing experts.h5 is a note. Exits 77 (skipped) after the other checks when chromium
# is not installed.
set -euo pipefail
mlamoe=$1 config=$2 data=$3 work=$4
expect=$(dirname "$0")/../expect_error.sh
rm -rf "$work"
mkdir -p "$work"
run="$work/run"
"$mlamoe" train --config "$config" --set data.path="$data" --set train.run_dir="$run" --set train.steps=30 \
  --set data.seq_len=32 --set train.peak_gflops=100 >"$work/train.log"
stats="$work/stats"  # the same run, its experts.jsonl without "counts" and "bias"
"$mlamoe" train --config "$config" --set data.path="$data" --set train.run_dir="$stats" --set train.steps=30 \
  --set data.seq_len=32 --set train.peak_gflops=100 --set train.experts_log=stats >"$work/train_stats.log"

# The terminal summary names every MoE layer of the log and skipped nothing.
"$mlamoe" experts "$run" --window 10 >"$work/summary.txt"
cat "$work/summary.txt"
/usr/bin/python3 - "$run" "$work/summary.txt" <<'PY'
import json, sys
run, summary = sys.argv[1], open(sys.argv[2]).read()
layers = [l["layer"] for l in json.loads(open(run + "/experts.jsonl").readline())["layers"]]
assert len(layers) == 4, f"tiny.json has 3 MoE layers and one MTP MoE layer, the log has {layers}"
for name in layers:
    assert name in summary, f"the summary does not name {name}"
assert "steps seen 30 " in summary and "skipped: nothing" in summary, "summary header or footer wrong"
PY

# A run killed while writing: the cut last line is skipped and said so; 29 steps are shown.
cut="$work/cut"
mkdir -p "$cut"
cp "$run/config.json" "$run/metrics.jsonl" "$cut/"
size=$(stat -c %s "$run/experts.jsonl")
last=$(tail -n 1 "$run/experts.jsonl" | wc -c)
head -c $((size - last / 2)) "$run/experts.jsonl" >"$cut/experts.jsonl"
"$mlamoe" experts "$cut" --html "$cut/report.html" >"$work/cut.txt"
grep -q "steps seen 29 " "$work/cut.txt" || { echo "FAIL: the cut log should show 29 steps"; cat "$work/cut.txt"; exit 1; }
grep -q "experts.jsonl line 30: cut short" "$work/cut.txt" ||
  { echo "FAIL: the cut line is not reported"; cat "$work/cut.txt"; exit 1; }
grep -q "experts.jsonl line 30: cut short" "$cut/report.html" || { echo "FAIL: the report does not list the cut line"; exit 1; }

# --follow on a growing log: a summary at 10 steps, and a refreshed one once the rest arrives.
grow="$work/grow"
mkdir -p "$grow"
cp "$run/config.json" "$run/metrics.jsonl" "$grow/"
head -n 10 "$run/experts.jsonl" >"$grow/experts.jsonl"
(sleep 2 && tail -n +11 "$run/experts.jsonl" >>"$grow/experts.jsonl") &
"$mlamoe" experts "$grow" --follow --follow-seconds 5 >"$work/follow.txt"
wait
grep -q "steps seen 10 " "$work/follow.txt" && grep -q "steps seen 30 " "$work/follow.txt" ||
  { echo "FAIL: --follow did not show 10 then 30 steps"; cat "$work/follow.txt"; exit 1; }

# The statistics-only run: no arrays in its JSONL, all of them from experts.h5, so the terminal
# table (MaxVio, bias, dead experts) is the full run's and nothing is skipped.
/usr/bin/python3 - "$stats" <<'PY'
import json, sys
for line in open(sys.argv[1] + "/experts.jsonl"):
    for l in json.loads(line)["layers"]:
        assert "counts" not in l and "bias" not in l, f"experts_log=stats logged arrays: {sorted(l)}"
PY
"$mlamoe" experts "$stats" --window 10 >"$work/stats.txt"
grep -q "skipped: nothing" "$work/stats.txt" || { echo "FAIL: the stats-only run skipped something"; cat "$work/stats.txt"; exit 1; }
diff <(sed -n '/^layer (worst first)/,$p' "$work/summary.txt") <(sed -n '/^layer (worst first)/,$p' "$work/stats.txt") ||
  { echo "FAIL: the stats-only run (counts and bias from experts.h5) differs from the full log"; exit 1; }
# A damaged or missing experts.h5: a note under "skipped:", not an error.
for case in damaged missing; do
  mkdir -p "$work/$case" && cp "$stats/config.json" "$stats/metrics.jsonl" "$stats/experts.jsonl" "$work/$case/"
done
head -c 3000 "$stats/experts.h5" >"$work/damaged/experts.h5"
"$mlamoe" experts "$work/damaged" --html "$work/damaged/report.html" >"$work/damaged.txt" ||
  { echo "FAIL: a damaged experts.h5 is an error"; cat "$work/damaged.txt"; exit 1; }
grep -q "experts.h5: cannot be read" "$work/damaged.txt" || { echo "FAIL: the damaged experts.h5 is not noted"; cat "$work/damaged.txt"; exit 1; }
"$mlamoe" experts "$work/missing" >"$work/missing.txt" || { echo "FAIL: a missing experts.h5 is an error"; exit 1; }
grep -q "carry no \"counts\".*experts.h5 is missing" "$work/missing.txt" ||
  { echo "FAIL: the missing experts.h5 is not noted"; cat "$work/missing.txt"; exit 1; }

# Missing or half-written run directories: one error line each, exit 1.
"$expect" 1 "run directory '$work/nowhere' does not exist" -- "$mlamoe" experts "$work/nowhere"
mkdir -p "$work/half" && cp "$run/config.json" "$work/half/"
"$expect" 1 "has no experts.jsonl" -- "$mlamoe" experts "$work/half"
head -c 100 "$run/experts.jsonl" >"$work/half/experts.jsonl"
"$expect" 1 "holds no complete step.*line 1: cut short" -- "$mlamoe" experts "$work/half"
"$expect" 1 "unknown flag --windw" -- "$mlamoe" experts "$run" --windw 3

# The report: self-contained (nothing fetched from the network).
report="$work/report.html"
"$mlamoe" experts "$run" --window 10 --html "$report" >/dev/null
[ -s "$report" ] || { echo "FAIL: no report written"; exit 1; }
stats_report="$work/stats_report.html"
"$mlamoe" experts "$stats" --window 10 --html "$stats_report" >/dev/null
if grep -Eiq "(src|href)=[\"']?[a-z]*:?//|<link|@import|https?://" "$report"; then
  echo "FAIL: the report references something outside itself:"
  grep -Eio ".{30}((src|href)=[\"']?[a-z]*:?//|<link|@import|https?://).{30}" "$report"
  exit 1
fi

if ! command -v chromium >/dev/null; then
  echo "SKIP: chromium is not installed (apt-get install chromium): the report was not rendered"
  exit 77
fi
chrome() { timeout 120 chromium --headless --disable-gpu --no-sandbox --user-data-dir="$work/chrome" "$@" 2>>"$work/chrome.err"; }
# check_dom RUN DOM: the rendered page against RUN's experts.jsonl (the full log).
check_dom() {
/usr/bin/python3 - "$1" "$2" <<'PY'
import json, math, sys
from html.parser import HTMLParser
run, dom = sys.argv[1], open(sys.argv[2]).read()
steps = [json.loads(l) for l in open(run + "/experts.jsonl")]
names = [l["layer"] for l in steps[-1]["layers"]]

class Page(HTMLParser):  # the elements the page's script created, with their data-* attributes
    def __init__(self):
        super().__init__()
        self.rows, self.table, self.cells, self.rendered, self.row = [], {}, {}, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body": self.rendered = a.get("data-rendered")
        if tag == "g" and a.get("class") == "heatmap-row":
            self.row = a["data-layer"]; self.rows.append((self.row, json.loads(a["data-values"]))); self.cells[self.row] = []
        if tag == "rect" and self.row: self.cells[self.row].append(float(a["data-load"]))
        if tag == "tr" and "data-layer" in a and "data-maxvio" in a: self.table[a["data-layer"]] = a
    def handle_endtag(self, tag):
        if tag == "g": self.row = None

p = Page()
p.feed(dom)
assert p.rendered == "ok", f"the page script did not finish cleanly (data-rendered={p.rendered!r})"
assert [r[0] for r in p.rows] == names, f"heatmap rows {[r[0] for r in p.rows]} != MoE layers {names}"
last = {l["layer"]: l for l in steps[-1]["layers"]}
window = steps[-10:]
for name, values in p.rows:
    got = p.table[name]
    assert float(got["data-maxvio"]) == last[name]["maxvio"], \
        f"{name}: table MaxVio {got['data-maxvio']} != log {last[name]['maxvio']}"
    for field in ("dead", "entropy", "cv"):
        if field in last[name]:
            assert float(got["data-" + field]) == last[name][field], f"{name}: table {field} differs from the log"
    counts = [sum(s["layers"][names.index(name)]["counts"][e] for s in window) for e in range(len(values))]
    mean = sum(counts) / len(counts)
    for e, (v, c) in enumerate(zip(values, counts)):
        assert math.isclose(v, c / mean, rel_tol=1e-12), f"{name} expert {e}: window load {v} != {c / mean} from the log"
        assert math.isclose(p.cells[name][e], v, rel_tol=1e-12), f"{name} expert {e}: cell and row values differ"
    bias = last[name].get("bias")
    if bias:  # the log keeps 7 digits, experts.h5 float32
        for field, want in (("data-bias-min", min(bias)), ("data-bias-max", max(bias))):
            assert math.isclose(float(got[field]), want, rel_tol=1e-6), f"{name}: table {field} {got[field]} != log {want}"
print(f"rendered: {len(p.rows)} heatmap rows; table and window heatmap equal the log (step {steps[-1]['step']})")
PY
}
chrome --dump-dom "file://$report" >"$work/dom.html"
check_dom "$run" "$work/dom.html"
# The statistics-only run's report, its per-expert numbers from experts.h5, equals the full log.
chrome --dump-dom "file://$stats_report" >"$work/stats_dom.html"
check_dom "$run" "$work/stats_dom.html"
chrome --hide-scrollbars --screenshot="$work/report.png" --window-size=1400,2000 "file://$report" >/dev/null
size=$(stat -c %s "$work/report.png" 2>/dev/null || echo 0)
[ "$size" -gt 30000 ] || { echo "FAIL: screenshot $work/report.png missing or blank ($size bytes)"; exit 1; }
[ "$(head -c 8 "$work/report.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "FAIL: not a PNG"; exit 1; }
echo "experts_report: ok (screenshot $work/report.png, $size bytes)"
