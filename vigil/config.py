"""Where Vigil keeps its data and which store and broker it talks to (flags, then environment)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from vigil.domain import Severity
from vigil.errors import InvalidInput

DEFAULT_RENOTIFY_MINUTES = {Severity.EMERGENCY: 5, Severity.URGENT: 15, Severity.WARNING: 60, Severity.INFO: 0}
"""How long an open alert may go unacknowledged before it is raised again, per severity; 0: never raised again.
Each is overridable as VIGIL_RENOTIFY_<SEVERITY>_MINUTES (e.g. VIGIL_RENOTIFY_URGENT_MINUTES=10)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    mqtt_url: str | None
    field_key: str | None = None  # VIGIL_KEY: base64 encryption key(s) instead of the key file
    ca_file: str | None = None  # VIGIL_CA_FILE: CA certificate that mqtts:// and https:// servers are checked against
    renotify: Mapping[Severity, timedelta] = field(default_factory=lambda: renotify_intervals({}))
    stream_url: str | None = None  # VIGIL_STREAM: None is the embedded stream kept in the store

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A named secret kept in VIGIL_HOME/keys, created on first use (mode 0600)."""
        private_directory(self.keys_dir)
        path = self.keys_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
        return path.read_text().strip()


def load_settings(
    db: str | None = None, mqtt: str | None = None, home: str | None = None, stream: str | None = None
) -> Settings:
    """Settings from explicit values, else VIGIL_HOME / VIGIL_DB / VIGIL_MQTT / VIGIL_STREAM, else defaults."""
    home_path = Path(home or os.environ.get("VIGIL_HOME") or "vigil-data").resolve()
    db_url = db or os.environ.get("VIGIL_DB") or f"sqlite:///{home_path / 'vigil.db'}"
    mqtt_url = mqtt or os.environ.get("VIGIL_MQTT") or None
    return Settings(
        home=home_path,
        db_url=db_url,
        mqtt_url=mqtt_url,
        field_key=os.environ.get("VIGIL_KEY") or None,
        ca_file=os.environ.get("VIGIL_CA_FILE") or None,
        renotify=renotify_intervals(os.environ),
        stream_url=stream or os.environ.get("VIGIL_STREAM") or None,
    )


def renotify_intervals(environ: Mapping[str, str]) -> dict[Severity, timedelta]:
    """The re-notification interval of each severity that is raised again (defaults, overridden from ``environ``)."""
    intervals = {}
    for severity, default in DEFAULT_RENOTIFY_MINUTES.items():
        name = f"VIGIL_RENOTIFY_{severity.upper()}_MINUTES"
        minutes = _minutes(name, environ.get(name, str(default)))
        if minutes > 0:
            intervals[severity] = timedelta(minutes=minutes)
    return intervals


def _minutes(name: str, text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise InvalidInput(f"{name}: must be a number of minutes, not {text!r}") from None
    if not minutes >= 0:
        raise InvalidInput(f"{name}: must be 0 (never) or more minutes")
    return minutes


def write_private_json(path: Path, value: dict) -> None:
    """Write atomically (a reader never sees half a file), readable by the owner only."""
    private_directory(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle, indent=1)
    os.replace(tmp, path)


def private_directory(path: Path) -> Path:
    """Create `path` and any missing parents for the owner only (0700); an existing directory is left as it is."""
    for directory in reversed([p for p in (path, *path.parents) if not p.exists()]):
        directory.mkdir(mode=0o700, exist_ok=True)
    return path


def private_file(path: Path) -> None:
    """Make sure `path` exists and only its owner may read or write it (0600)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
