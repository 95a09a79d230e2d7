"""Readings rows as domain values: the one SELECT of a reading's columns and its conversion back."""

from __future__ import annotations

import logging

from vigil.domain import Quality, Reading
from vigil.metrics import MetricName
from vigil.timeutil import parse_time

log = logging.getLogger(__name__)

READING_SELECT = "SELECT readings.id, patient_id, device_id, metric, time, value, unit, seq, quality FROM readings"


def reading_from_row(row: tuple) -> Reading | None:
    """A readings row (id first) as a Reading; None, with a warning naming the row, if its time does not parse (a
    row stored before times were checked, such as year 999)."""
    try:
        time = parse_time(row[4])
    except ValueError:
        log.warning("readings row id=%s skipped: its time %r is not a valid fixed-width UTC time", row[0], row[4])
        return None
    return Reading(row[1], row[2], MetricName(row[3]), time, row[5], row[6], row[7], Quality(row[8]))
