"""Vigil's closed loop against BBController, OpenAPS oref0 and Loop on the same virtual patients, meals and habits.

Usage: python benchmarks/glucose_closed_loop.py [--patients all] [--days 7] [--seed 1] [--baseline bb,oref0,loop]
           [--save docs/results/glucose-closed-loop.json] [--figure docs/figures/glucose-closed-loop.png]
           [--markdown docs/results/glucose-closed-loop.md]

Runs ``vigil glucose simulate --baseline bb,oref0,loop`` in-process, saves the JSON (Vigil's summary in the
DESIGN.md shape, each peer under ``baselines``), prints the per-age-group table, writes it as the README's
markdown table and draws time in range, time below 70 mg/dL and rescue carbohydrate per age group.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.progress import Progress

from vigil.glucose.body import patient_names
from vigil.glucose.simulation import (
    BASELINES,
    CLOSED_LOOP_HEADER,
    closed_loop_line,
    closed_loop_result,
    simulate_cohort,
)

NAMES = {"vigil": "Vigil", "bb": "BBController", "oref0": "OpenAPS oref0", "loop": "Loop (PyLoopKit)"}
PANELS = [
    ("tir", "time in range 70-180 mg/dL", 100, "% of time"),
    ("tbr", "time below 70 mg/dL", 100, "% of time"),
    ("rescue_g_per_day", "rescue carbohydrate", 1, "g a day"),
]


def summaries(result: dict) -> dict[str, dict]:
    """Each controller's summary by its display name, Vigil first."""
    return {NAMES["vigil"]: result, **{NAMES[k]: v for k, v in result["baselines"].items()}}


def markdown_table(result: dict) -> str:
    """The README table: per age group and overall, every controller's TIR, TBR, TBR54, TAR, GRI and rescues."""
    lines = [
        "| age group | controller | in range 70-180 | below 70 | below 54 | above 180 | GRI | rescue g/day | rescues/day |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [(g, g) for g in result["groups"]] + [("overall", f"**all {len(result['patients'])}**")]
    for group, label in groups:
        for name, summary in summaries(result).items():
            m = summary["overall"] if group == "overall" else summary["groups"][group]
            lines.append(
                f"| {label} | {name} | {m['tir']:.1%} | {m['tbr']:.2%} | {m['tbr54']:.2%} | {m['tar']:.1%} | "
                f"{m['gri']:.1f} | {m['rescue_g_per_day']:.1f} | {m['rescues_per_day']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def draw(result: dict, path: Path) -> None:
    """Three panels per age group and overall: time in range, time below 70 and rescue carbohydrate a day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [*result["groups"], "overall"]
    by_name = summaries(result)
    figure, axes = plt.subplots(1, len(PANELS), figsize=(15, 3.8))
    width = 0.8 / len(by_name)
    for panel, (key, title, scale, unit) in zip(axes, PANELS):
        for offset, (label, summary) in enumerate(by_name.items()):
            values = [scale * (summary["overall"] if g == "overall" else summary["groups"][g])[key] for g in groups]
            panel.bar(np.arange(len(groups)) + offset * width, values, width, label=label)
        panel.set_xticks(np.arange(len(groups)) + width * (len(by_name) - 1) / 2, groups)
        panel.set_ylabel(unit)
        panel.set_title(title)
    axes[0].legend(loc="lower right", fontsize="small")
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
    parser.add_argument("--markdown", type=Path, default=Path("docs/results/glucose-closed-loop.md"))
    parser.add_argument("--baseline", default=",".join(BASELINES), help="peers beside Vigil, comma-separated")
    args = parser.parse_args()
    names = patient_names(args.patients)
    controllers = ("vigil", *[peer for peer in args.baseline.split(",") if peer])
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
    args.markdown.write_text(markdown_table(result))
    print(CLOSED_LOOP_HEADER)
    for controller, summary in [("vigil", result), *result["baselines"].items()]:
        for group, metrics in [*summary["groups"].items(), ("overall", summary["overall"])]:
            print(closed_loop_line(controller, group, metrics))


if __name__ == "__main__":
    main()
