#!/usr/bin/env python3
"""check_comm_profile.py OUT GROUPS WHERE: the exposed-communication table that `mlamoe train --profile`
printed into OUT (rank 0's stdout) has a row for each group in GROUPS (comma-separated) with calls
and bytes, and waits where WHERE says: "host" (MPI: the training thread waited, no device waits)
or "device:G1,G2" (those groups run on NCCL: their waits are on the device and only there, the
others' on the host). The closing line's per-step total must equal the rows' sum of mean waits."""
import re
import sys

out, groups, where = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
text = open(out).read()
assert "exposed communication (the step waited for it; nothing hid it)" in text, "no exposed-communication table"
num = r"([0-9.]+)"
pair = num + r" \[" + num + r"\]"
rows = {}
for m in re.finditer(r"^  (\w+) +" + num + " +" + r"([0-9.e+-]+)" + " +" + pair + " +" + pair + " +" + pair + "$", text, re.M):
    v = [float(x) for x in m.groups()[1:]]
    rows[m.group(1)] = dict(calls=v[0], mb=v[1], host=v[2], host_max=v[3], dev=v[4], dev_max=v[5], busy=v[6])
device_groups = where.split(":", 1)[1].split(",") if where.startswith("device:") else []
for g in groups:
    assert g in rows, f"no row for group {g}: {sorted(rows)}"
    r = rows[g]
    assert r["calls"] > 0 and r["mb"] > 0, (g, r)
    assert r["host_max"] >= r["host"] and r["dev_max"] >= r["dev"], (g, "busiest rank below the mean", r)
    if g in device_groups:
        assert r["dev"] > 0 and r["busy"] > 0 and r["host"] == 0, (g, "NCCL group: expected device waits only", r)
    else:
        assert r["host"] > 0 and r["dev"] == 0 and r["busy"] == 0, (g, "MPI group: expected host waits only", r)
m = re.search(r"exposed in all: ([0-9.]+) ms per step \[busiest rank ([0-9.]+) ms\], ([0-9.]+)% of the mean step", text)
assert m, "no closing line"
total = sum(r["host"] + r["dev"] for r in rows.values())
assert abs(float(m.group(1)) - total) <= 0.002 * len(rows) + 1e-3 * total, (m.group(0), total)
assert 0 < float(m.group(3)) < 100, m.group(0)
exposed = ", ".join(f"{g} {rows[g]['host'] + rows[g]['dev']:.3f} ms" for g in groups)
print(f"comm profile: exposed per step {exposed}; in all {m.group(1)} ms ({m.group(3)}% of the step)")
