"""`vigil audit`: verify the hash-chained audit log, and show who read or changed a patient's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil import admin
from vigil.cli.common import (
    CHECK_FAILED,
    DbOption,
    JsonFlag,
    admin_context,
    admin_errors,
    emit,
    fail,
    refusing,
    store_for,
)
from vigil.config import Settings, load_settings
from vigil.security.audit import AUDIT_KEY_FILE, Head, verify_log
from vigil.security.policy import operator

app = typer.Typer(help="The hash-chained audit log: who read or changed what, and when.", no_args_is_help=True)
HEAD_HELP = (
    "SEQ:HASH, the head an earlier verify printed: fail if that entry is gone or changed (newest entries deleted)"
)
HEAD_FILE_HELP = (
    "expect the head kept in this file (if it exists), and keep the verified head there; "
    "store it apart from the database"
)
SHOWN_PROBLEMS = 100


@app.command("verify")
def verify(
    expect_head: Annotated[str | None, typer.Option("--expect-head", help=HEAD_HELP)] = None,
    head_file: Annotated[Path | None, typer.Option("--head-file", help=HEAD_FILE_HELP)] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the whole chain, and that it still holds the head noted before; exit status 1 if any entry was
    edited, reordered or deleted."""
    expected = _expected_head(expect_head, head_file)
    settings = load_settings(db)
    key = _audit_key(settings)
    with refusing(ValueError, option="--head-file"):
        result = verify_log(store_for(settings), key, expected, head_file)
    problems = result.problems[:SHOWN_PROBLEMS]
    emit(
        {
            "entries": result.entries,
            "intact": result.intact,
            "problems": problems,
            "head": {"seq": result.head.seq, "hash": result.head.hash},
        },
        as_json,
        "\n".join(problems) if problems else f"audit log intact: {result.entries} entries, head {result.head}",
    )
    if not result.intact:
        raise typer.Exit(CHECK_FAILED)


def _expected_head(expect_head: str | None, head_file: Path | None) -> Head | None:
    """The head given by --expect-head (None without it), once --head-file is known not to be given too."""
    if expect_head and head_file:
        fail("--expect-head, --head-file: give one of them")
    if head_file and not head_file.parent.is_dir():
        fail(f"--head-file: {head_file.parent} is not a directory")
    if not expect_head:
        return None
    with refusing(ValueError, option="--expect-head"):
        return Head.parse(expect_head)


def _audit_key(settings: Settings) -> bytes:
    """The audit log's HMAC key, which must exist already: verifying under a newly made key would prove nothing."""
    if not (settings.keys_dir / AUDIT_KEY_FILE).exists():
        fail(f"no audit key at {settings.keys_dir / AUDIT_KEY_FILE}: set VIGIL_HOME to the one the server uses")
    return settings.secret(AUDIT_KEY_FILE).encode()


@app.command("show")
def show(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Who read or changed this patient's data, and when (itself an audited read)."""
    with admin_errors():
        entries = [e.as_json() for e in admin.patient_audit_trail(admin_context(db), operator(), patient)]
    emit(
        entries,
        as_json,
        "\n".join(
            f"{e['time']}  {e['actor']:24s} {e['action']:22s} {e['outcome']:7s} {e['resource']}" for e in entries
        ),
    )
