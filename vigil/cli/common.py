"""What the `vigil` commands share: common options, printing results and errors, exit statuses, opening the store."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress

from vigil.admin import CommandContext
from vigil.config import Settings, load_settings
from vigil.datasets.physionet import PsvFormatError, load_stays
from vigil.errors import AlreadyExists, InvalidInput, NotFound
from vigil.security.crypto import CryptoError, load_store_keys
from vigil.store import SqlStore, open_store

CHECK_FAILED = 1
"""Exit status of a check that ran and found a problem (`vigil audit verify`)."""
REFUSED = 2
"""Exit status of a command refused for its options, input or environment (as Typer's own for a bad option)."""

err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--db", help="sqlite:///path.db or postgresql://... (VIGIL_DB)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON value on stdout")]
TlsCertOption = Annotated[Path | None, typer.Option("--tls-cert", help="server certificate chain (PEM)")]
TlsKeyOption = Annotated[Path | None, typer.Option("--tls-key", help="its private key (PEM)")]
# vigil.admin names the field at fault; these are the options that carry those fields.
FIELD_OPTIONS = {
    "patient_id": "--patient",
    "device_id": "--device",
    "password": "password",
    "birth_date": "--birth-date",
}


def emit(value: Any, as_json: bool, text: str) -> None:
    """The result: one JSON value on stdout with --json, else the text."""
    if as_json:
        sys.stdout.write(orjson.dumps(value).decode() + "\n")
    else:
        typer.echo(text)


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(REFUSED)


@contextmanager
def refusing(*errors: type[Exception], option: str = "") -> Iterator[None]:
    """Any of these errors raised inside refuses the command with its message (after the option at fault)."""
    try:
        yield
    except errors as error:
        fail(f"{option}: {error}" if option else str(error))


@contextmanager
def admin_errors() -> Iterator[None]:
    """A change vigil.admin refuses is refused, naming the option at fault."""
    try:
        yield
    except (InvalidInput, AlreadyExists, NotFound) as error:
        fail(f"{FIELD_OPTIONS.get(error.field, '--' + error.field)}: {error.reason}")


def store_for(settings: Settings) -> SqlStore:
    """The store the settings name, with its keys; refused plainly if it cannot be opened or its values decrypted."""
    with refusing(CryptoError):
        keys = load_store_keys(settings)
    try:
        store = open_store(settings.db_url, keys)
    except CryptoError as error:
        fail(f"cannot decrypt the store's identifiers with these keys: {error}")
    except Exception as error:  # unreachable server, bad URL: say so plainly
        fail(f"cannot open store {settings.db_url}: {error}")
    missing = store.key_ids_in_use() - set(keys.field.keys)
    if missing:
        fail(
            f"cannot decrypt the store's identifiers with these keys: they need key(s) {', '.join(sorted(missing))}, "
            "which VIGIL_KEY or VIGIL_HOME/keys does not hold"
        )
    return store


def admin_context(db: str | None) -> CommandContext:
    settings = load_settings(db)
    return CommandContext(store_for(settings), settings)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def tls_pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """--tls-cert and --tls-key: both (existing files) or neither."""
    if (cert is None) != (key is None):
        fail("--tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            fail(f"{option}: {path} is not a file")
    return (cert.resolve(), key.resolve()) if cert and key else None


def stays_with_progress(data: Path, limit: int | None = None) -> pd.DataFrame:
    """PhysioNet 2019 stays from a directory or archive, with a progress bar; refused if they cannot be read."""
    with Progress(console=err, transient=True) as progress, refusing(PsvFormatError, ValueError):
        task = progress.add_task(f"reading {data.name}", total=limit)
        return load_stays(data, limit=limit, progress=lambda n: progress.advance(task, n))


def save_json(value: Any, path: Path, indent: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode())
    err.print(f"saved to {path}")
