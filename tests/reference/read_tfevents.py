#!/usr/bin/env python3
"""Reads an event file (or a directory of them) with TensorBoard's own loaders, for
tests/train/monitor/test_tensorboard.cpp: what TensorBoard makes of train/monitor/tensorboard.cpp's output.

    read_tfevents.py PATH

Prints one JSON object on stdout:
  tensorboard_version, file_version (from the first event, via event_file_loader);
  scalars:    {tag: [[step, value], ...]}          (event_accumulator: the classic reader)
  histograms: {tag: [{step, min, max, num, sum, sum_squares, bucket_limit, bucket}, ...]}
  tensors:    {tag: {plugin, events: [[step, value], ...]}} (plugin_event_accumulator: what the
              TensorBoard server shows, after data_compat has migrated simple_value / histo to
              tensors; a histogram's value is its [left, right, count] rows).
Both accumulators run with purge_orphaned_data on, as the server does, so SessionLog.START events
take effect. Exits 77 (with the reason on stderr) when `tensorboard` cannot be imported.
"""
import json
import os
import sys

try:
    import tensorboard
    from tensorboard.backend.event_processing import event_accumulator, event_file_loader
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorboard.util import tensor_util
except ImportError as e:
    print("tensorboard is not importable (%s); install it with "
          "'/usr/bin/python3 -m pip install --break-system-packages tensorboard'" % e, file=sys.stderr)
    sys.exit(77)


def main(path):
    first_file = path
    if os.path.isdir(path):
        first_file = os.path.join(path, sorted(f for f in os.listdir(path) if "tfevents" in f)[0])
    first = next(iter(event_file_loader.EventFileLoader(first_file).Load()))

    classic = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    classic.Reload()
    tags = classic.Tags()
    scalars = {t: [[e.step, e.value] for e in classic.Scalars(t)] for t in tags["scalars"]}
    histograms = {}
    for t in tags["histograms"]:
        histograms[t] = [{"step": e.step, "min": h.min, "max": h.max, "num": h.num, "sum": h.sum,
                          "sum_squares": h.sum_squares, "bucket_limit": list(h.bucket_limit),
                          "bucket": list(h.bucket)}
                         for e in classic.Histograms(t) for h in [e.histogram_value]]

    server = plugin_event_accumulator.EventAccumulator(path, tensor_size_guidance={"scalars": 0, "histograms": 0})
    server.Reload()
    tensors = {}
    for t in server.Tags()["tensors"]:
        tensors[t] = {"plugin": server.SummaryMetadata(t).plugin_data.plugin_name,
                      "events": [[e.step, tensor_util.make_ndarray(e.tensor_proto).tolist()] for e in server.Tensors(t)]}

    json.dump({"tensorboard_version": tensorboard.__version__, "file_version": first.file_version,
               "scalars": scalars, "histograms": histograms, "tensors": tensors}, sys.stdout)
    print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: read_tfevents.py EVENT_FILE_OR_DIR", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
