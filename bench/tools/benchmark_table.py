"""Summarise a pytest-benchmark JSON file: rows/s per implementation and the fast/reference ratio.

Usage: python bench/tools/benchmark_table.py bench.json [--markdown]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--fast", default="cpp", help="impl id of the fast path")
    parser.add_argument("--reference", default="numpy", help="impl id of the reference")
    args = parser.parse_args()
    data = json.load(open(args.json_file))
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        impl = bench["params"].get("impl") if bench.get("params") else None
        if impl is None:
            match = re.search(r"\[(\w+)", bench["name"])
            impl = match.group(1) if match else bench["name"]
        groups[bench["group"]][impl] = bench
    machine = data.get("machine_info", {})
    print(f"machine: {machine.get('cpu', {}).get('brand_raw', '?')}, "
          f"{machine.get('cpu', {}).get('count', '?')} cores; date {data.get('datetime', '?')[:10]}")
    print(f"| benchmark | {args.fast} | {args.reference} | ratio | unit | notes |")
    print("|---|---|---|---|---|---|")
    for group, impls in groups.items():
        rates = {}
        unit = next(iter(impls.values())).get("extra_info", {}).get("unit", "rows/s")
        for impl, bench in impls.items():
            rows = bench.get("extra_info", {}).get("rows_per_call", 1)
            rates[impl] = rows / bench["stats"]["median"]
        fast, ref = rates.get(args.fast), rates.get(args.reference)
        ratio = f"{fast / ref:.2f}x" if fast and ref else "-"
        notes = ", ".join(
            f"{impl}: writers {b['extra_info']['writer_rows_per_s']:,} rows/s"
            for impl, b in impls.items() if "writer_rows_per_s" in b.get("extra_info", {})
        )
        fmt = lambda r: f"{r:,.0f}" if r else "-"  # noqa: E731
        print(f"| {group} | {fmt(fast)} | {fmt(ref)} | {ratio} | {unit} | {notes} |")


if __name__ == "__main__":
    main()
