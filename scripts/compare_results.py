#!/usr/bin/env python3
"""Checks that a `flashmem eval` run reproduces the cells of a reference results.json.

usage: scripts/compare_results.py REFERENCE.json NEW.json [--ignore FIELD,...]

For every cell of NEW (keyed by family, length, policy, budget) the reference must hold the same
cell with equal deterministic fields: the scores (accuracy, answers found, solved), the generated
token count, the page geometry and the KV accounting (resident fractions and bytes, the per-step
fractions of sample 0, attention bytes per step). Timings are not compared. Exits 1 on any
difference or missing cell; a refactor of the runtime that keeps behaviour must pass it.
--ignore leaves fields out (e.g. resident_kv_bytes_avg against a reference written before its
definition changed to an average over decode steps).
"""
import json
import sys

FIELDS = ["spec", "n", "accuracy", "answers_found", "answers_total", "solved", "decode_tokens",
          "page_tokens", "tau", "sink_pages", "recent_pages", "tail_pages",
          "resident_fraction_avg", "resident_fraction_peak", "resident_kv_bytes_avg",
          "resident_kv_bytes_peak", "full_kv_bytes_avg", "attn_bytes_per_step",
          "resident_fraction_steps", "config"]


def key(cell):
    return (cell["family"], cell["length"], cell["policy"], cell["budget"])


def main():
    args = sys.argv[1:]
    ignored = set()
    if len(args) == 4 and args[2] == "--ignore":
        ignored = set(args[3].split(","))
        args = args[:2]
    if len(args) != 2:
        sys.exit(__doc__)
    fields = [f for f in FIELDS if f not in ignored]
    with open(args[0]) as f:
        ref = {key(c): c for c in json.load(f)["cells"]}
    with open(args[1]) as f:
        new = json.load(f)["cells"]
    bad = 0
    for cell in sorted(new, key=lambda c: tuple(str(x) for x in key(c))):
        k = key(cell)
        if k not in ref:
            print(f"MISSING {k}: not in the reference")
            bad += 1
            continue
        diff = [f for f in fields if cell.get(f) != ref[k].get(f)]
        status = "same" if not diff else "DIFFERENT " + ", ".join(diff)
        print(f"{k[0]:14} {k[1]:5} {k[2]:8} {str(k[3]):5} acc {cell['accuracy']:.3f} "
              f"tokens {cell['decode_tokens']:5}: {status}")
        bad += bool(diff)
    print(f"{len(new)} cells compared, {bad} differ or are missing")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
