"""Readings/s of the store's two insert paths (staged bulk load vs row by row), alternated in one process on one engine."""

from __future__ import annotations

import argparse
import tempfile
import time

from vigil.bench import synthetic_batches
from vigil.config import load_settings
from vigil.ingest.validation import validate_batch
from vigil.security.crypto import load_store_keys
from vigil.store import SqlStore
from vigil.timeutil import utc_now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="store URL (default: a new SQLite file)")
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp()
    url = args.db or f"sqlite:///{home}/ab.db"
    store = SqlStore(url, load_store_keys(load_settings(db=url, home=home)))
    for round_ in range(args.rounds):
        for staged in (False, True):
            store._dialect.stages_batches = staged  # the one switch between the two paths
            patient = store.add_patient("A/B")
            device, _ = store.add_device(patient.patient_id, "wearable")
            batches = [validate_batch(b, device, utc_now())[0] for b in synthetic_batches(args.readings, 500)]
            started = time.perf_counter()
            for batch in batches:
                store.insert_readings(batch)
            rate = args.readings / (time.perf_counter() - started)
            print(f"round {round_ + 1} {'staged    ' if staged else 'row by row'} {rate:>10,.0f} readings/s")


if __name__ == "__main__":
    main()
