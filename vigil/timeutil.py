"""UTC timestamps: parsing device times and formatting them the same way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a time without an offset is taken as UTC. Raises ValueError, also for a time
    that is out of range once moved to UTC (0001-01-01T00:00:00+05:00)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range in UTC") from None


def format_time(value: datetime) -> str:
    """Fixed-width UTC ISO 8601 ('2026-11-27T10:00:00.000000Z', always a 4-digit year): sorts as text in time order."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
