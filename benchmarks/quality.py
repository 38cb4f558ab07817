"""Quality bars of issue 3: test accuracy of the presets on Fashion-MNIST and MNIST-1D, trained by ``descend train``.

Each recipe is a literal ``descend train`` command line; this script runs it (in-process, through the same
entry point), reads the run's summary.json and writes the table to benchmarks/results/quality.{json,md}.
Copy the Markdown into docs/results.md.

    .venv/bin/python -m benchmarks.quality [--only NAME ...] [--seeds 0,1,2] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from pathlib import Path

#: name -> (bar, published reference, descend train arguments)
RECIPES: dict[str, tuple[float, str, str]] = {
    "fashion-mnist-mlp": (
        0.89,
        "MLP 256-128-100: 0.883 (Fashion-MNIST benchmark table)",
        "--dataset fashion-mnist --model mlp --hidden 256,128 --optimizer adam --lr 1e-3 "
        "--schedule cosine --epochs 10 --batch-size 128 --validation 0",
    ),
    "fashion-mnist-cnn": (
        0.91,
        "2 conv + pooling: 0.916 (Fashion-MNIST benchmark table)",
        "--dataset fashion-mnist --model cnn --optimizer adam --lr 1e-3 --schedule cosine "
        "--epochs 10 --batch-size 128 --validation 0",
    ),
    "mnist1d-mlp": (
        0.68,
        "MLP: 0.68 (MNIST-1D paper, Greydanus 2020)",
        "--dataset mnist1d --model mlp --hidden 512,512 --dropout 0.5 --optimizer adam --lr 1e-3 "
        "--schedule cosine --epochs 100 --batch-size 64 --validation 0",
    ),
    "mnist1d-cnn": (
        0.94,
        "CNN: 0.94 (MNIST-1D paper, Greydanus 2020)",
        "--dataset mnist1d --model cnn --dropout 0.5 --optimizer adam --lr 2e-3 --schedule cosine "
        "--epochs 80 --batch-size 64 --validation 0",
    ),
}


def run_recipe(name: str, seed: int, out_dir: Path) -> dict:
    from descend.cli.main import main

    run_dir = out_dir / f"{name}-seed{seed}"
    summary_path = run_dir / "summary.json"
    argv = ["train", *shlex.split(RECIPES[name][2]), "--seed", str(seed), "--out", str(run_dir), "--quiet"]
    if not summary_path.exists():  # finished runs are not recomputed
        code = main(argv)
        if code != 0:
            raise SystemExit(f"{name}: descend train exited with {code}")
    summary = json.loads(summary_path.read_text())
    return {"seed": seed, "test_accuracy": summary["test_accuracy"], "wall_time": summary["wall_time"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=tuple(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/quality-runs"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for name in args.only:
        bar, reference, recipe = RECIPES[name]
        t0 = time.perf_counter()
        runs = [run_recipe(name, s, args.out_dir) for s in seeds]
        accs = [r["test_accuracy"] for r in runs]
        row = {
            "name": name,
            "bar": bar,
            "reference": reference,
            "command": f"descend train {recipe} --seed S --out DIR",
            "seeds": seeds,
            "test_accuracy": accs,
            "median": statistics.median(accs),
            "min": min(accs),
            "mean_wall_time_s": statistics.mean(r["wall_time"] for r in runs),
            "passed": statistics.median(accs) >= bar,
        }
        results.append(row)
        print(f"{name}: test accuracy {', '.join(f'{a:.4f}' for a in accs)} (bar {bar}) "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    # Merge with the recipes measured earlier (a run of --only A keeps B's row), in RECIPES order.
    previous = json.loads((out / "quality.json").read_text()) if (out / "quality.json").exists() else []
    by_name = {r["name"]: r for r in previous if r.get("name") in RECIPES}
    by_name.update({r["name"]: r for r in results})
    results = [by_name[n] for n in RECIPES if n in by_name]
    (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| task | bar | test accuracy (median; per seed) | reference | mean wall time | command |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        accs = "; ".join(f"{a:.4f}" for a in r["test_accuracy"])
        mark = "✅" if r["passed"] else "❌"
        lines.append(
            f"| {r['name']} | ≥ {r['bar']} | {mark} **{r['median']:.4f}** ({accs}) | {r['reference']} | "
            f"{r['mean_wall_time_s']:.0f} s | `{r['command']}` |"
        )
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
