"""Summary table of the GPU check: correctness verdicts and throughput ratios from the JSON files.

Usage: python bench/gpu_summary.py PYTEST_JUNIT.xml BENCH1.json [BENCH2.json ...]
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

# Ratios at equal precision: what fusion, the graph and the whole fast path add on their own.
EQUAL_PRECISION = [
    ("fusion alone, tf32", "fused-eager-tf32", "reference-tf32"),
    ("CUDA graph alone, tf32", "fused-graph-tf32", "fused-eager-tf32"),
    ("fused + graph vs eager, tf32", "fused-graph-tf32", "reference-tf32"),
    ("fused + graph vs torch.compile, tf32", "fused-graph-tf32", "compiled-tf32"),
    ("fused + graph vs eager, fp32 (Triton FMA vs cuBLAS)", "fused-graph-ieee", "reference-fp32"),
]


def main() -> None:
    junit, benches = sys.argv[1], sys.argv[2:]
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        root = None
        print(f"GPU tests: no results in {junit} (run the 'tests' stage)")
    suite = None if root is None else (root if root.tag == "testsuite" else root.find("testsuite"))
    if suite is not None:
        print("GPU tests:", {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")})
    for case in ([] if suite is None else suite.iter("testcase")):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            print(f"  FAIL {case.get('classname')}.{case.get('name')}: {(bad.get('message') or '')[:200]}")
        for prop in case.iter("property"):  # facts a test measured, e.g. how tf32 operands round
            print(f"  {case.get('name')}: {prop.get('name')} = {prop.get('value')}")
    rates, groups = {}, {}
    for path in benches:
        for b in json.load(open(path))["benchmarks"]:
            info = b.get("extra_info", {})
            rate = info.get("rows_per_call", 1) / b["stats"]["median"]
            groups.setdefault(b["group"], []).append((b["name"], rate, info))
            if b["group"].startswith("dense matmul"):
                rates[info["precision"]] = rate * 1e12  # FLOP/s
    for group, items in groups.items():
        print(f"\n{group}")
        base = next((r for n, r, _ in items if "reference-fp32" in n or "[reference" in n), None)
        for name, rate, info in items:
            line = f"  {name:<55} {rate:>14,.1f} {info.get('unit', '')}"
            if base and "matmul" not in group:
                line += f"   {rate / base:6.2f}x vs eager fp32"
            precision = info.get("precision", "")
            # 3xTF32 issues three TF32 products per product: its floor is a third of TF32's rate.
            prec, passes = {"ieee": ("fp32", 1), "fp32": ("fp32", 1), "tf32": ("tf32", 1),
                            "tf32x3": ("tf32", 3), "bf16": ("bf16", 1)}.get(precision, (None, 1))
            if "flop_per_call" in info and prec in rates:
                floor_s = passes * info["flop_per_call"] / rates[prec]
                achieved_s = info["rows_per_call"] / rate
                line += f"   {floor_s / achieved_s:5.1%} of the {precision} matmul floor"
            print(line)
        by_impl = {name[name.find("[") + 1:-1]: rate for name, rate, _ in items if "[" in name}
        for label, fast, slow in EQUAL_PRECISION:
            if fast in by_impl and slow in by_impl:
                print(f"  {label:<55} {by_impl[fast] / by_impl[slow]:6.2f}x ({fast} / {slow})")


if __name__ == "__main__":
    main()
