"""Where Vigil keeps its data and which store and broker it talks to (flags, then environment)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    mqtt_url: str | None
    field_key: str | None = None  # VIGIL_KEY: base64 encryption key(s) instead of the key file
    ca_file: str | None = None  # VIGIL_CA_FILE: CA certificate that mqtts:// and https:// servers are checked against

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A named secret kept in VIGIL_HOME/keys, created on first use (mode 0600)."""
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.keys_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
        return path.read_text().strip()


def load_settings(db: str | None = None, mqtt: str | None = None, home: str | None = None) -> Settings:
    """Settings from explicit values, else VIGIL_HOME / VIGIL_DB / VIGIL_MQTT, else defaults."""
    home_path = Path(home or os.environ.get("VIGIL_HOME") or "vigil-data").resolve()
    db_url = db or os.environ.get("VIGIL_DB") or f"sqlite:///{home_path / 'vigil.db'}"
    mqtt_url = mqtt or os.environ.get("VIGIL_MQTT") or None
    return Settings(
        home=home_path,
        db_url=db_url,
        mqtt_url=mqtt_url,
        field_key=os.environ.get("VIGIL_KEY") or None,
        ca_file=os.environ.get("VIGIL_CA_FILE") or None,
    )


def write_private_json(path: Path, value: dict) -> None:
    """Write atomically (a reader never sees half a file), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle, indent=1)
    os.replace(tmp, path)
