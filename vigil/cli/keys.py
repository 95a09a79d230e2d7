"""`vigil keys`: rotate the keys that encrypt identifiers at rest."""

from __future__ import annotations

import typer

from vigil.cli.common import DbOption, JsonFlag, emit, refusing, store_for
from vigil.config import load_settings
from vigil.security.crypto import KeyConfigError
from vigil.security.keys import rotate_field_keys
from vigil.security.policy import operator

app = typer.Typer(help="The keys that encrypt identifiers at rest.", no_args_is_help=True)


@app.command("rotate")
def rotate(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Encrypt every identifier under a new key; old keys stay until nothing needs them (safe to interrupt and rerun).

    With VIGIL_KEY, put the new key first (VIGIL_KEY=NEW,OLD) and run this to move everything to it.
    """
    settings = load_settings(db)
    with refusing(KeyConfigError):
        rotation = rotate_field_keys(settings, store_for(settings), operator())
    emit(
        {"key_id": rotation.key_id, "reencrypted": rotation.reencrypted, "no_longer_needed": rotation.no_longer_needed},
        as_json,
        f"{rotation.reencrypted} values now under key {rotation.key_id}; "
        f"no longer needed: {', '.join(rotation.no_longer_needed) or 'none'}",
    )
