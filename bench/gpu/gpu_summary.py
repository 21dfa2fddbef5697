"""Summary table of the GPU check: correctness verdicts and throughput ratios from the files it wrote.

Usage: python bench/gpu/gpu_summary.py [TESTS.xml ...] [BENCH.json ...]   (pytest junit XML, pytest-benchmark
JSON; missing or unreadable files are reported and skipped, so a partial check still summarises)
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


def group_of(bench: dict) -> str:
    """A benchmark's group; one without (the online learner) is grouped by its test function."""
    return bench.get("group") or bench.get("name", "?").split("[")[0]


def rate_of(bench: dict) -> tuple[float, str]:
    """Calls per second times the rows (or updates, FLOPs) per call, and the unit."""
    info = bench.get("extra_info", {})
    per_call = info.get("rows_per_call", 1)
    return per_call / bench["stats"]["median"], info.get("unit", "calls/s")


def print_tests(paths: list[str]) -> None:
    for junit in paths:
        try:
            root = ET.parse(junit).getroot()
        except (OSError, ET.ParseError) as exc:
            print(f"GPU tests: no results in {junit} ({exc.__class__.__name__})")
            continue
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        if suite is None:
            print(f"GPU tests: {junit} holds no test suite")
            continue
        print(f"GPU tests ({junit.rsplit('/', 1)[-1]}):", {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")})
        for case in suite.iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if bad is not None:
                print(f"  FAIL {case.get('classname')}.{case.get('name')}: {(bad.get('message') or '')[:200]}")
            for prop in case.iter("property"):  # facts a test measured, e.g. how tf32 operands round
                print(f"  {case.get('name')}: {prop.get('name')} = {prop.get('value')}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    print_tests([a for a in args if a.endswith(".xml")])
    rates, groups = {}, {}
    for path in (a for a in args if not a.endswith(".xml")):
        try:
            benchmarks = json.load(open(path))["benchmarks"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"benchmarks: no results in {path} ({exc.__class__.__name__})")
            continue
        for b in benchmarks:
            info = b.get("extra_info", {})
            rate, unit = rate_of(b)
            groups.setdefault(group_of(b), []).append((b["name"], rate, unit, info))
            if group_of(b).startswith("dense matmul"):
                rates[info["precision"]] = rate * 1e12  # FLOP/s
    for group, items in groups.items():
        print(f"\n{group}")
        base = next((r for n, r, _, _ in items if "reference-fp32" in n or "[reference" in n), None)
        for name, rate, unit, info in items:
            line = f"  {name:<55} {rate:>14,.1f} {unit}"
            if "critic_updates_per_s" in info:
                line += f"   {info['critic_updates_per_s']:,.0f} critic updates/s"
            if base and "matmul" not in group:
                line += f"   {rate / base:6.2f}x vs the reference"
            precision = info.get("precision", "")
            # 3xTF32 issues three TF32 products per product: its floor is a third of TF32's rate.
            prec, passes = {"ieee": ("fp32", 1), "fp32": ("fp32", 1), "tf32": ("tf32", 1),
                            "tf32x3": ("tf32", 3), "bf16": ("bf16", 1)}.get(precision, (None, 1))
            if "flop_per_call" in info and prec in rates:
                floor_s = passes * info["flop_per_call"] / rates[prec]
                achieved_s = info["rows_per_call"] / rate
                line += f"   {floor_s / achieved_s:5.1%} of the {precision} matmul floor"
            print(line)
        by_impl = {name[name.find("[") + 1:-1]: rate for name, rate, _, _ in items if "[" in name}
        for label, fast, slow in EQUAL_PRECISION:
            if fast in by_impl and slow in by_impl:
                print(f"  {label:<55} {by_impl[fast] / by_impl[slow]:6.2f}x ({fast} / {slow})")


if __name__ == "__main__":
    main()
