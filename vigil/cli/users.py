"""`vigil users`: logins for people: create, list, lock, unlock, set passwords and one-time codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vigil import admin
from vigil.cli.common import DbOption, JsonFlag, admin_context, admin_errors, emit
from vigil.security.policy import operator

app = typer.Typer(help="Logins for people: create, lock, unlock, reset passwords.", no_args_is_help=True)
UsernameOption = Annotated[str, typer.Option("--username")]


@app.command("add")
def add(
    username: UsernameOption,
    role: Annotated[str, typer.Option("--role", help="admin, clinician or patient")],
    patient: Annotated[str | None, typer.Option("--patient", help="for role patient: their patient id")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a login. Without --password-stdin you are prompted for the password."""
    ctx = admin_context(db)
    with admin_errors():
        admin.check_new_user(ctx.store, username, role, patient)  # before asking for a password
        admin.add_user(ctx, operator(), username, role, _new_password(password_stdin), patient)
    emit({"username": username}, as_json, f"user {username} ({role}) added")


def _new_password(from_stdin: bool) -> str:
    return (
        sys.stdin.readline().rstrip("\n")
        if from_stdin
        else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )


@app.command("list")
def list_(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List logins with their role, patient, one-time codes and lock state (an audited read)."""
    rows = [
        {
            "username": u.username,
            "role": u.role,
            "patient_id": u.patient_id,
            "totp_enabled": u.totp_enabled,
            "locked": u.locked,
        }
        for u in admin.list_users(admin_context(db), operator())
    ]
    emit(
        rows,
        as_json,
        "\n".join(f"{r['username']}  {r['role']}{'  locked' if r['locked'] else ''}" for r in rows) or "no users",
    )


@app.command("password")
def password(
    username: UsernameOption,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a user's password; every session and bearer token they hold ends."""
    with admin_errors():
        ended = admin.set_password(admin_context(db), operator(), username, _new_password(password_stdin))
    emit(
        {"username": username, "sessions_ended": ended}, as_json, f"password of {username} set; {ended} sessions ended"
    )


@app.command("lock")
def lock(username: UsernameOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Refuse this user's logins until unlocked; every session and bearer token they hold ends."""
    with admin_errors():
        ended = admin.lock_user(admin_context(db), operator(), username)
    emit(
        {"username": username, "locked": True, "sessions_ended": ended},
        as_json,
        f"{username} locked; {ended} sessions ended",
    )


@app.command("unlock")
def unlock(username: UsernameOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Allow this user's logins again (also lifting a lockout after failed logins)."""
    with admin_errors():
        admin.unlock_user(admin_context(db), operator(), username)
    emit({"username": username, "locked": False}, as_json, f"{username} unlocked")


@app.command("totp")
def totp(
    username: UsernameOption,
    disable: Annotated[bool, typer.Option("--disable", help="turn one-time codes off again")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Require a one-time code (RFC 6238) at this user's login; prints the provisioning URI once."""
    with admin_errors():
        uri = admin.set_totp(admin_context(db), operator(), username, enabled=not disable)
    if uri is None:
        emit({"username": username, "totp": False}, as_json, f"one-time codes off for {username}")
    else:
        emit(
            {"username": username, "totp": True, "provisioning_uri": uri},
            as_json,
            f"{uri}\n(add it to an authenticator app now; it is shown only once)",
        )
