"""Run every benchmark module and merge their rows into one descend/torch ratio table.

A benchmark module is any ``benchmarks/<name>.py`` that defines
``rows(quick: bool) -> list[dict]``. Each row has at least ``benchmark``,
``case``, ``descend_ms``, ``torch_ms`` and ``ratio`` (descend/torch, lower is
better); other keys (``layout``, ``n``, ``bound_ms``, ...) are kept in the JSON
and shown when present. Each module's rows go to ``benchmarks/results/<name>.json``
and ``.md``; the merged table is printed and written to ``results/summary.md``.

    .venv/bin/python benchmarks/run.py [--quick] [--only optim_step ...]
    .venv/bin/python -m benchmarks.run --quick
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT.parent))

RESULTS = ROOT / "results"
COLUMNS = [  # (key, header, format); a column is shown when some row has the key
    ("benchmark", "benchmark", "{}"),
    ("case", "case", "{}"),
    ("layout", "layout", "{}"),
    ("n", "params", "{:,}"),
    ("device", "device", "{}"),
    ("threads", "threads", "{}"),
    ("descend_path", "descend path", "{}"),
    ("torch_path", "torch path", "{}"),
    ("descend_ms", "descend ms", "{:.2f}"),
    ("pure_ms", "pure ms", "{:.2f}"),
    ("donated_ms", "donated ms", "{:.2f}"),
    ("torch_ms", "torch ms", "{:.2f}"),
    ("descend_s", "descend s", "{:.2f}"),
    ("torch_s", "torch s", "{:.2f}"),
    ("ratio", "ratio", "{:.2f}"),
    ("pure_ratio", "pure ratio", "{:.2f}"),
    ("donated_ratio", "donated ratio", "{:.2f}"),
    ("ratio_foreach", "ratio vs foreach", "{:.2f}"),  # torch_step: against torch's foreach=True and fused=True
    ("ratio_fused", "ratio vs fused", "{:.2f}"),
    ("reference_ms", "reference chain ms", "{:.2f}"),
    ("bound_ms", "bound ms", "{:.2f}"),
    ("vs_bound", "x bound", "{:.2f}"),
    ("grads_per_hvp", "grads per HVP", "{:.2f}"),  # benchmarks/hvp.py: Hessian-vector product / one gradient
]


def discover() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules([str(ROOT)]) if m.name not in ("run",) and not m.name.startswith("_")
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt.format(r[key]) if r.get(key) is not None else "" for key, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    cells = [[h for _, h, _ in cols]]
    cells += [[fmt.format(r[key]) if r.get(key) is not None else "" for key, _, fmt in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def main(argv: list[str] | None = None, modules: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description="descend benchmarks: descend/torch ratios")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark modules to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="threads for numba and torch (default: numba's)")
    args = parser.parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    names = modules or args.only or discover()
    RESULTS.mkdir(exist_ok=True)
    from benchmarks import optim_step

    info = optim_step.machine()
    info["first_fused_step_ms"] = optim_step.first_call_ms()
    info["numba_threading_layer"] = optim_step._threading_layer()
    info["quick"] = args.quick
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print("machine:", json.dumps(info))
    merged: list[dict[str, Any]] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "rows"):
            continue
        t0 = time.perf_counter()
        rows = module.rows(quick=args.quick)
        seconds = time.perf_counter() - t0
        merged += rows
        payload = {"machine": info, "seconds": seconds, "rows": rows}
        (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
        header = f"# {name}\n\n`{' '.join(['benchmarks/run.py', *sys.argv[1:]])}`, {info['date']}\n\n"
        (RESULTS / f"{name}.md").write_text(header + _machine_md(info) + "\n" + markdown(rows))
    (RESULTS / "summary.md").write_text("# descend vs torch\n\n" + _machine_md(info) + "\n" + markdown(merged))
    print()
    print(text_table(merged))
    return merged


def _machine_md(info: dict[str, Any]) -> str:
    return "".join(f"- {k}: {v}\n" for k, v in info.items())


if __name__ == "__main__":
    main()
