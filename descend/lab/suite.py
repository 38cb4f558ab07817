"""Compare optimizers on several workloads and score them together: ``descend compare --workload all``.

Each workload (:mod:`descend.lab.workloads`) is an ordinary comparison directory under the suite's root, run by
the usual protocol (:func:`descend.lab.compare.run_comparison`) with its own report; the root gets one combined
report with the AlgoPerf-style scoring (:mod:`descend.lab.profile`)::

    ROOT/workloads.json                  manifest: format, the exact command line, budget, one plan per workload
    ROOT/mnist1d-mlp/                    a comparison directory (comparison.json, runs/, report.html, ...)
    ROOT/mnist1d-cnn/  ROOT/fmnist-mlp/  ROOT/fmnist-cnn/
    ROOT/report.html                     the combined report: performance profiles, steps and time to each target,
    ROOT/profile.png                     each workload's ranking with its ties, the warnings
    ROOT/report-data.json                the data behind it

Everything is checked before anything is written (every plan, every data set); rerunning the same command, or
``descend compare --resume ROOT``, continues without recomputing a finished run.

>>> suite = make_suite("all", budget="quick", optimizers=["sgd", "adam"], seeds=2)
>>> result = run_suite(suite, "compare-workloads", workers=2)
>>> write_suite_report(result)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from descend._io import atomic_write_text
from descend.errors import DescendError
from descend.lab import compare as C
from descend.lab import profile as P
from descend.lab import report as R
from descend.lab import store
from descend.lab import workloads as W
from descend.train import experiment as ex
from descend.train import lock

FORMAT = "descend-workloads/1"
MANIFEST = "workloads.json"
PROFILE = "profile"


def make_suite(
    workloads: str | Sequence[str] = "all",
    *,
    budget: str = "full",
    overrides: Mapping[str, Any] | None = None,
    optimizers: Sequence[str] | None = None,
    grid: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    seeds: int | Sequence[int] = C.DEFAULT_SEEDS,
    optimizer_args: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A validated suite: one :func:`~descend.lab.compare.make_plan` plan per workload, all with the same
    optimizers, grids, seeds and ``overrides`` (keys the workloads leave free: ``epochs``, ``schedule``, ...),
    each with its workload's target. ``budget="quick"`` is the smoke-test budget (:mod:`descend.lab.workloads`)."""
    W.check_budget(budget)
    chosen = W.resolve(workloads) if isinstance(workloads, str) else [W.get(n) for n in workloads]
    if not chosen:
        raise C.ComparisonError("compare: give at least one workload")
    plans, records = {}, {}
    for w in chosen:
        plan = C.make_plan(
            w.base(budget, overrides),
            optimizers=optimizers,
            grid=grid,
            seeds=seeds,
            optimizer_args=optimizer_args,
            target=w.target_for(budget),
        )
        plans[w.name] = plan
        records[w.name] = w.record(budget, overrides)
    return {"budget": budget, "workloads": [w.name for w in chosen], "records": records, "plans": plans}


@dataclass
class Suite:
    """A suite directory: its manifest and the comparison of each workload (absent: not started yet)."""

    root: Path
    manifest: dict[str, Any]
    comparisons: dict[str, C.Comparison]

    @property
    def workloads(self) -> list[str]:
        return list(self.manifest["workloads"])

    @property
    def complete(self) -> bool:
        return all(n in self.comparisons and self.comparisons[n].complete for n in self.workloads)


def is_suite(root: str | os.PathLike | None) -> bool:
    """Whether ``root`` is a suite directory (it holds ``workloads.json``)."""
    return root is not None and (Path(root) / MANIFEST).is_file()


def _suite_part(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {k: manifest[k] for k in ("budget", "workloads", "records", "plans")}


def _check_manifest(root: Path, manifest: Any) -> dict[str, Any]:
    path = root / MANIFEST
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise C.ComparisonError(f"{path}: not a descend workload comparison manifest (no format)")
    if manifest["format"] != FORMAT:
        raise C.ComparisonError(
            f"{path}: written by another version of descend (format {manifest['format']!r}, this version reads "
            f"{FORMAT!r}); compare into a new directory"
        )
    try:
        names = manifest["workloads"]
        plans = manifest["plans"]
        if not isinstance(names, list) or set(names) != set(plans) or not isinstance(manifest["records"], dict):
            raise KeyError("workloads")
        for name in names:
            W.get(name)
            plan = plans[name]
            again = C.make_plan(plan["base"], optimizers=plan["optimizers"], grid=plan["grid"], seeds=plan["seeds"],
                                optimizer_args=plan["optimizer_args"], target=plan["target"])  # fmt: skip
            if again != plan:
                raise C.ComparisonError(f"{path}: the plan of {name} is not in its normal form; it was edited by hand")
    except (KeyError, TypeError) as e:
        raise C.ComparisonError(f"{path}: the manifest is incomplete ({e}); it was edited or is damaged") from None
    except C.ComparisonError:
        raise
    except DescendError as e:
        raise C.ComparisonError(f"{path}: the manifest is not valid: {e}") from None
    return manifest


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise C.ComparisonError(f"{path}: the manifest is not readable JSON ({e})") from None
    return _check_manifest(root, doc)


def load_suite(root: str | os.PathLike) -> Suite:
    """The suite in ``root`` with every workload comparison started so far (checked as :func:`compare.load`)."""
    root = Path(root)
    if not is_suite(root):
        raise C.ComparisonError(f"{root} is not a workload comparison directory (no {MANIFEST})")
    manifest = _read_manifest(root)
    comparisons = {n: C.load(root / n) for n in manifest["workloads"] if (root / n / C.MANIFEST).is_file()}
    return Suite(root, manifest, comparisons)


def _load_data(suite: Mapping[str, Any]) -> None:
    """Every workload's data, loaded once before anything is written (a missing data set is reported first)."""
    seen = set()
    for plan in suite["plans"].values():
        first = plan["optimizers"][0]
        cfg = C.run_config(plan, first, plan["grid"][first][0], plan["seeds"][0])
        key = json.dumps([cfg.get(k) for k in ("dataset", "test_data", "data_dir", "normalize", "validation")])
        if key not in seen:
            seen.add(key)
            ex.load_data(cfg)


def run_suite(
    suite: dict[str, Any] | None,
    root: str | os.PathLike,
    *,
    workers: int | None = None,
    stream: TextIO | None = None,
    scheduler: str = "local",
    max_concurrent: int | None = None,
    argv: Sequence[str] | None = None,
    reports: bool = True,
) -> Suite:
    """Run (or continue) every workload of ``suite`` into ``ROOT/<workload>`` and return the suite.

    ``suite=None`` continues whatever ``root`` holds. ``stream``: where the progress goes (None: nowhere);
    ``argv``: the command line, recorded in the manifests; ``reports``: write each workload's report and the
    combined one (:func:`write_suite_report`). The other options are :func:`~descend.lab.compare.run_comparison`'s.
    """
    root = Path(root)
    argv = None if argv is None else [str(a) for a in argv]
    if is_suite(root):
        manifest = _read_manifest(root)
        if suite is not None and _suite_part(manifest) != json.loads(json.dumps(suite)):
            raise C.ComparisonError(
                f"{root} holds a different workload comparison ({_difference(_suite_part(manifest), suite)}); "
                f"continue it with 'descend compare --resume {root}' or choose another --out"
            )
        suite = _suite_part(manifest)
    else:
        if suite is None:
            raise C.ComparisonError(f"{root} is not a workload comparison directory (no {MANIFEST})")
        if root.exists() and (not root.is_dir() or any(p.name != lock.LOCK_NAME for p in root.iterdir())):
            raise C.ComparisonError(f"{root} exists and is not a workload comparison directory; choose another --out")
        manifest = None
    _load_data(suite)  # everything is checked (the plans by make_suite, now the data) before anything is written
    with lock.hold(root, "descend compare --workload", kind="workload comparison directory"):
        if manifest is None:
            import descend

            manifest = {"format": FORMAT, "descend_version": descend.__version__, "argv": argv,
                        **json.loads(json.dumps(suite))}  # fmt: skip
            atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        names = manifest["workloads"]
        comparisons: dict[str, C.Comparison] = {}
        for i, name in enumerate(names, start=1):
            progress = C.Progress(stream)
            record = manifest["records"][name]
            progress.message(
                f"workload {name} ({i}/{len(names)}): {record['title']}, target val accuracy {record['target']:g}"
            )
            comparisons[name] = C.run_comparison(
                manifest["plans"][name],
                root / name,
                workers=workers,
                progress=progress,
                scheduler=scheduler,
                max_concurrent=max_concurrent,
                record={"argv": argv, "workload": record} if argv is not None else {"workload": record},
            )
            if reports:
                R.write_report(comparisons[name])
        result = Suite(root, manifest, comparisons)
        if reports:
            write_suite_report(result)
    return result


def _difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if old["workloads"] != new["workloads"]:
        return f"workloads {', '.join(old['workloads'])} there, {', '.join(new['workloads'])} asked"
    if old["budget"] != new["budget"]:
        return f"budget {old['budget']} there, {new['budget']} asked"
    for name in old["workloads"]:
        if old["plans"][name] != new["plans"][name]:
            return f"{name}: {store.plan_difference(old['plans'][name], new['plans'][name])}"
    return "differs"


# ------------------------------------------------------------------------------------------------- scoring


@dataclass
class Scores:
    """The AlgoPerf-style scoring of a suite."""

    reaches: dict[str, dict[str, P.Reach]]  # workload -> optimizer -> how it reached the target
    steps: dict[str, dict[str, float]]  # workload -> optimizer -> steps to the target (inf: not reached)
    time: dict[str, dict[str, float]]
    score_steps: dict[str, float]  # optimizer -> profile score
    score_time: dict[str, float]


def scores(suite: Suite) -> Scores:
    """Steps and time to each workload's target, and the performance-profile scores (:mod:`descend.lab.profile`).

    A workload not finished yet counts every optimizer as not having reached its target."""
    reaches: dict[str, dict[str, P.Reach]] = {}
    optimizers = list(dict.fromkeys(o for n in suite.workloads for o in suite.manifest["plans"][n]["optimizers"]))
    for name in suite.workloads:
        comparison = suite.comparisons.get(name)
        found = P.reach(comparison) if comparison is not None else {}
        reaches[name] = {o: found.get(o, P.Reach(o, math.inf, math.inf, math.inf, 0, 0)) for o in optimizers}
    steps = {w: {o: r.steps for o, r in row.items()} for w, row in reaches.items()}
    time = {w: {o: r.time for o, r in row.items()} for w, row in reaches.items()}
    return Scores(reaches, steps, time, P.profile_score(steps), P.profile_score(time))


# -------------------------------------------------------------------------------------------------- report


def _profile_figure(plt, sc: Scores):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, costs, score, what in ((axes[0], sc.steps, sc.score_steps, "steps"), (axes[1], sc.time, sc.score_time,
                                                                                "time")):  # fmt: skip
        taus = P.tau_axis(costs)
        rho = P.performance_profile(costs, taus)
        styles = R.line_styles(len(rho))
        for i, (name, values) in enumerate(rho.items()):
            ax.step(taus, values, where="post", color=R.color(name), lw=1.8, marker=styles[i]["marker"],
                    ls=styles[i]["ls"], markevery=R._markevery(i, len(rho), len(taus)), ms=5, mfc="none",
                    label=f"{name} (score {score[name]:.2f})")  # fmt: skip
        ax.set_xscale("log")
        ticks = [t for t in (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128) if t <= taus[-1]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
        ax.axvline(P.TAU_MAX, color="0.6", lw=0.9, ls=":")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(f"τ: within this factor of the fastest ({what} to target)")
        ax.set_ylabel("fraction of workloads")
        ax.set_title(f"{what} to target (score: area up to τ = {P.TAU_MAX:g}, dotted)")
        ax.legend(loc="lower right")
    fig.suptitle("Performance profiles: the fraction of workloads each optimizer solves within a factor τ of the "
                 "fastest")  # fmt: skip
    return fig


def _cost(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:.0f}" if unit == "steps" else f"{value:.1f} s"


def _scores_table_html(suite: Suite, sc: Scores) -> str:
    names = sorted(sc.score_steps, key=lambda n: (-sc.score_steps[n], -sc.score_time[n], n))
    head = ["optimizer", "profile score (steps)", "profile score (time)", "workloads reached"]
    head += [f"{w}: steps (× fastest)" for w in suite.workloads]
    rows = []
    ratios = P.performance_ratios(sc.steps)
    for name in names:
        reached = sum(math.isfinite(sc.steps[w][name]) for w in suite.workloads)
        cells = [f'<td><span class="swatch" style="background:{R.color(name)}"></span>{R._esc(name)}</td>',
                 f"<td>{sc.score_steps[name]:.3f}</td>", f"<td>{sc.score_time[name]:.3f}</td>",
                 f"<td>{reached}/{len(suite.workloads)}</td>"]  # fmt: skip
        for w in suite.workloads:
            steps, ratio = sc.steps[w][name], ratios[w][name]
            cells.append(f"<td>{_cost(steps, 'steps')} (× {ratio:.2f})</td>" if math.isfinite(steps) else "<td>—</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{R._esc(h)}</th>" for h in head)
    table = f'<table id="scores"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _workload_section(suite: Suite, name: str, sc: Scores) -> str:
    record = suite.manifest["records"][name]
    comparison = suite.comparisons.get(name)
    head = f"""<section id="workload-{R._esc(name)}"><h2>{R._esc(name)}: {R._esc(record["title"])}</h2>
<p class="caption">Target: validation accuracy ≥ {record["target"]:g}, set from {R._esc(record["target_source"])}.
Budget {R._esc(record["budget"])}: {suite.manifest["plans"][name]["base"]["epochs"]} epochs.
Full report: <a href="{R._esc(name)}/{R.REPORT}">{R._esc(name)}/{R.REPORT}</a>.</p>"""
    if comparison is None:
        return head + "<p>Not started yet.</p></section>"
    unc = R.uncertainty(comparison)
    reach_rows = []
    for o, r in sc.reaches[name].items():
        if r.seeds:
            reach_rows.append(f"{R._esc(o)} {_cost(r.steps, 'steps')} steps / {_cost(r.time, 'time')} "
                              f"({r.reached}/{r.seeds} seeds)")  # fmt: skip
    return (
        head
        + R._ranked_table_html(comparison)
        + R._ties_html(unc, len(comparison.plan["seeds"]))
        + f'<p class="caption">To the target (median over seeds): {"; ".join(reach_rows)}.</p>'
        + R._warnings_html(R.protocol_warnings(comparison))
        + "</section>"
    )


def _suite_data(suite: Suite, sc: Scores) -> dict[str, Any]:
    ties = {n: R.uncertainty(c).groups for n, c in suite.comparisons.items()}
    return {
        "format": FORMAT,
        "budget": suite.manifest["budget"],
        "workloads": suite.workloads,
        "records": suite.manifest["records"],
        "steps_to_target": sc.steps,
        "time_to_target": sc.time,
        "score_steps": sc.score_steps,
        "score_time": sc.score_time,
        "tau_max": P.TAU_MAX,
        "tie_groups": ties,
        "selected": {n: c.selected for n, c in suite.comparisons.items()},
    }


#: The scores table's first column is the optimizer (the comparison tables have the rank first).
_CSS = """
#scores th:first-child, #scores td:first-child { text-align:left; }
#scores th:nth-child(2), #scores td:nth-child(2) { text-align:right; }
"""


def write_suite_report(suite: Suite) -> Path:
    """Write the combined ``report.html``, ``profile.png`` and ``report-data.json`` into the suite's root."""
    plt = R._pyplot()
    sc = scores(suite)
    fig = _profile_figure(plt, sc)
    try:
        image = R._png(fig, suite.root / f"{PROFILE}.png")
    finally:
        plt.close(fig)
    data = R._json_script(_suite_data(suite, sc))
    atomic_write_text(suite.root / R.REPORT_DATA, data + "\n")
    manifest = suite.manifest
    first = manifest["plans"][suite.workloads[0]]
    n_opt = len(first["optimizers"])
    started = R.started_as(manifest)
    title = f"{n_opt} optimizers on {len(suite.workloads)} workloads"
    reach_note = "" if suite.complete else " Some workloads are not finished: they count as not reached."
    sections = [
        f"""<header><h1>{R._esc(title)}</h1>
<p>Budget {R._esc(manifest["budget"])} · optimizers {R._esc(", ".join(first["optimizers"]))} · seeds
{R._esc(", ".join(map(str, first["seeds"])))} · schedule {R._esc(first["base"]["schedule"])}</p>
<p>Protocol: on each workload, every optimizer trains once per learning rate of its grid at seed {first["seeds"][0]};
the best final validation accuracy selects its rate, rerun with {R.seeds_phrase(first["seeds"][1:])} (DeepOBS).
Scoring (AlgoPerf): the steps and the time each optimizer took to reach the workload's target.{reach_note}</p>
</header>""",
        f"""<section id="profile"><h2>Performance profiles</h2>
<p class="caption">For each optimizer, the fraction of workloads on which it reached the target within a factor τ
of the fastest optimizer there (τ on a log axis; the median over seeds, a seed that never reached the target counts
as never). Score: the area under the curve up to τ = {P.TAU_MAX:g}, divided by log {P.TAU_MAX:g} (1: fastest
everywhere). Steps are counted at the end of the first epoch that reached the target; times are measured inside each
run, with parallel workers sharing the machine.</p>
<img src="data:image/png;base64,{image}" alt="performance profiles" id="fig-{PROFILE}">
{_scores_table_html(suite, sc)}</section>""",
        *(_workload_section(suite, n, sc) for n in suite.workloads),
        f"""<section id="configuration"><h2>Configuration and reproduction</h2>
<p class="caption">{R._esc(started[0])}</p>
<pre id="started-as">{R._esc(started[1])}</pre>
<p class="caption">Continue or rerun it: <code>descend compare --resume {R._esc(suite.root.resolve())}</code>.
<code>{MANIFEST}</code> holds every workload's plan; each workload directory holds its
<code>experiment.toml</code>.</p></section>""",
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{R._esc(title)}</title>
<style>{R._CSS}{_CSS}</style></head>
<body><main>
{"".join(sections)}
<footer>descend {R._esc(manifest.get("descend_version", ""))} · format {FORMAT} · the data behind this page:
<a href="{R.REPORT_DATA}">{R.REPORT_DATA}</a> (also embedded in the page)</footer>
</main>
<script type="application/json" id="suite-data">
{data}
</script>
</body></html>
"""
    path = suite.root / R.REPORT
    atomic_write_text(path, page)
    return path


def score_rows(suite: Suite) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the scores, best first (what ``descend compare --workload all`` prints)."""
    sc = scores(suite)
    names = sorted(sc.score_steps, key=lambda n: (-sc.score_steps[n], -sc.score_time[n], n))
    headers = ["optimizer", "score (steps)", "score (time)", *(f"{w} steps" for w in suite.workloads)]
    rows = [[n, f"{sc.score_steps[n]:.3f}", f"{sc.score_time[n]:.3f}",
             *(_cost(sc.steps[w][n], "steps") for w in suite.workloads)] for n in names]  # fmt: skip
    return headers, rows


__all__ = [
    "FORMAT",
    "MANIFEST",
    "Scores",
    "Suite",
    "is_suite",
    "load_suite",
    "make_suite",
    "run_suite",
    "score_rows",
    "scores",
    "write_suite_report",
]
