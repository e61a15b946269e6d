#!/usr/bin/env python3
"""Reads every step's `histograms` in a results.json with the PyPI `hdrhistogram`
package (`pip install hdrhistogram`), the reference decoder of HdrHistogram's V2
compressed base64 strings, and checks them against the step's own figures: counts
(corrected = count + abandoned, uncorrected = count) and every percentile.

Percentiles are read at rank ceil(p/100 * n), as the Rust crate does (the Python
package rounds the rank instead, so its get_value_at_percentile can differ on
small steps by one value).

Usage: scripts/check_histograms.py results.json   (exit 1 on a mismatch)
"""
import json
import math
import sys

from hdrh.histogram import HdrHistogram


def value_at(h, p):
    target = max(1, math.ceil(p / 100 * h.get_total_count()))
    total = 0
    for index in range(h.counts_len):
        total += h.get_count_at_index(index)
        if total >= target:
            return h.get_highest_equivalent_value(h.get_value_from_index(index))
    return 0


def main(path):
    doc = json.load(open(path))
    steps = [(n, s) for d in doc.get("scan", {}).values() for n, s in d.items()]
    if doc.get("capacity_probe"):
        steps.append(("capacity_probe", doc["capacity_probe"]))
    bad = 0
    for name, s in steps:
        h = s.get("histograms")
        if h is None:
            continue
        c = HdrHistogram.decode(h["corrected"])
        u = HdrHistogram.decode(h["uncorrected"])
        checks = [("corrected count", c.get_total_count(), s["count"] + s["abandoned"]),
                  ("uncorrected count", u.get_total_count(), s["count"])]
        for hist, key in ((c, "percentiles"), (u, "percentiles_uncorrected")):
            for p, v in (s[key] or {}).items():
                if hist.get_total_count():
                    checks.append((f"{key} {p}", value_at(hist, float(p)) / 1e9, v))
        for what, got, want in checks:
            if got != want:
                bad += 1
                print(f"{name}: {what}: histogram {got}, step {want}")
    read = sum(1 for _, s in steps if s.get("histograms") is not None)
    print(f"{len(steps)} steps, {read} with histograms, {bad} mismatches")
    if not read:
        print("no step holds histograms: nothing was checked")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
