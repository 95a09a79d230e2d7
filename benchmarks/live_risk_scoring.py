"""The live sepsis scorer's cost per patient-hour against how many patients' hours close in one update.

    python benchmarks/live_risk_scoring.py [--patients 400]

Each patient first gets two hours of a wearable's vitals (one a minute); then, round by round, one reading per
patient an hour later closes each patient's hour, fed in updates of 1, 5, 25, 100 and all patients at once.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from vigil.domain import Reading
from vigil.models.live import LiveRiskScorer
from vigil.models.risk import default_vitals_model

START = datetime(2026, 11, 27, tzinfo=UTC)
VITALS = {"heart_rate": (72.0, "/min"), "resp_rate": (14.0, "/min"), "body_temp": (36.8, "Cel"), "spo2": (97.0, "%")}


def _warm(scorer: LiveRiskScorer, patients: int) -> None:
    for p in range(patients):
        scorer.update(
            [
                Reading(f"p{p}", "watch", metric, START + timedelta(minutes=m), value, unit)
                for m in range(120)
                for metric, (value, unit) in VITALS.items()
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400)
    args = parser.parse_args()
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (60.0, 1.0))
    _warm(scorer, args.patients)
    results = []
    for round_, per_update in enumerate((1, 5, 25, 100, args.patients)):
        at = START + timedelta(minutes=125 + 60 * round_)
        closing = [Reading(f"p{p}", "watch", "heart_rate", at, 72.0, "/min") for p in range(args.patients)]
        started = time.perf_counter()
        scored = sum(len(scorer.update(closing[i : i + per_update])) for i in range(0, args.patients, per_update))
        seconds = time.perf_counter() - started
        assert scored == args.patients, f"{scored} hours scored, {args.patients} expected"
        results.append({"patients_per_update": per_update, "ms_per_patient_hour": round(1000 * seconds / scored, 2)})
        print(f"{per_update:>5} patients an update: {results[-1]['ms_per_patient_hour']:7.2f} ms a patient-hour")
    print(json.dumps({"patients": args.patients, "results": results}))


if __name__ == "__main__":
    main()
