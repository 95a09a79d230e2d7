"""`vigil mqtt`: the Mosquitto broker's password, ACL and config files, from the device registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.admin import broker_directory
from vigil.cli.common import DbOption, TlsCertOption, TlsKeyOption, err, fail, store_for, tls_pair
from vigil.config import load_settings
from vigil.ingest.mosquitto import SERVICE_PASSWORD_SECRET, SERVICE_USER, BrokerTls, write_broker_config

app = typer.Typer(help="The Mosquitto broker's password and ACL files.", no_args_is_help=True)


@app.command("config")
def config(
    out: Annotated[Path | None, typer.Option("--out", help="directory (default VIGIL_HOME/mosquitto)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="default 1883, or 8883 with TLS")] = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="CA certificate that issued --tls-cert (PEM)")] = None,
    db: DbOption = None,
) -> None:
    """Write Mosquitto's password file, ACL file and a mosquitto.conf from the device registry (TLS-only with --tls-*)."""
    tls = _broker_tls(tls_cert, tls_key, tls_ca)
    settings = load_settings(db)
    files, conf = write_broker_config(
        out or broker_directory(settings),
        store_for(settings).mqtt_credentials(),
        settings.secret(SERVICE_PASSWORD_SECRET),
        port,
        tls,
    )
    err.print(f"wrote {files.password_file}, {files.acl_file} and {conf}")
    err.print(f"ingest service user: {SERVICE_USER} (password in {settings.keys_dir / SERVICE_PASSWORD_SECRET})")


def _broker_tls(cert: Path | None, key: Path | None, ca: Path | None) -> BrokerTls | None:
    pair = tls_pair(cert, key)
    if pair and (ca is None or not ca.is_file()):
        fail("--tls-ca: the CA certificate file is required with --tls-cert")
    return BrokerTls(pair[0], pair[1], ca.resolve()) if pair else None
