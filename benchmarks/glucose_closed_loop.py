"""Vigil's closed loop against simglucose's BBController on the same virtual patients, meals and announcements.

Usage: python benchmarks/glucose_closed_loop.py [--patients all] [--days 7] [--seed 1]
           [--save docs/results/glucose-closed-loop.json] [--figure docs/figures/glucose-closed-loop.png]

Runs ``vigil glucose simulate --baseline`` in-process, saves the JSON (Vigil's summary in the DESIGN.md shape,
BBController under ``baselines.bb``), prints the per-age-group table and draws time in range and time below
70 mg/dL per age group for both controllers.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.progress import Progress

from vigil.glucose.body import patient_names
from vigil.glucose.simulation import closed_loop_result, simulate_cohort


def draw(result: dict, path: Path) -> None:
    """Two panels: time in range and time below 70 mg/dL, per age group and overall, Vigil beside BBController."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [*result["groups"], "overall"]
    summaries = {
        "Vigil": result,
        **{f"BBController ({k})" if k != "bb" else "BBController": v for k, v in result["baselines"].items()},
    }
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(summaries)
    for panel, (key, title) in zip(axes, [("tir", "time in range 70-180 mg/dL"), ("tbr", "time below 70 mg/dL")]):
        for offset, (label, summary) in enumerate(summaries.items()):
            values = [
                100 * (summary["groups"].get(g) or summary["overall"])[key]
                if g != "overall"
                else 100 * summary["overall"][key]
                for g in groups
            ]
            panel.bar(np.arange(len(groups)) + offset * width, values, width, label=label)
        panel.set_xticks(np.arange(len(groups)) + width * (len(summaries) - 1) / 2, groups)
        panel.set_ylabel("% of time")
        panel.set_title(title)
    axes[0].legend(loc="lower right")
    figure.suptitle(f"{len(result['patients'])} virtual patients, {result['days']} days, seed {result['seed']}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", default="all")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--save", type=Path, default=Path("docs/results/glucose-closed-loop.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/glucose-closed-loop.png"))
    args = parser.parse_args()
    names = patient_names(args.patients)
    controllers = ("vigil", "bb")
    with Progress() as progress:
        task = progress.add_task("closed loop", total=len(names) * len(controllers))
        runs = simulate_cohort(
            names,
            args.days,
            args.seed,
            controllers,
            args.workers,
            lambda run: progress.update(task, advance=1, description=f"{run.controller} {run.patient}"),
        )
    result = closed_loop_result(runs, controllers, args.days, args.seed)
    args.save.parent.mkdir(parents=True, exist_ok=True)
    args.save.write_text(json.dumps(result, indent=2))
    draw(result, args.figure)
    for controller, summary in [("vigil", result), *result["baselines"].items()]:
        for group, metrics in [*summary["groups"].items(), ("overall", summary["overall"])]:
            print(
                f"{controller:<6} {group:<11} TIR {metrics['tir']:.1%}  <70 {metrics['tbr']:.2%}  "
                f"<54 {metrics['tbr54']:.2%}  >180 {metrics['tar']:.1%}  mean {metrics['mean_bg']:.1f}"
            )


if __name__ == "__main__":
    main()
