"""The `vigil` command line: run the platform, manage patients, devices and users, simulate a ward."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from vigil.config import Settings, load_settings

app = typer.Typer(help="Vigil remote patient monitoring.", no_args_is_help=True, add_completion=False)
patients_app = typer.Typer(help="Register and list patients; assign them to clinicians.", no_args_is_help=True)
devices_app = typer.Typer(help="Register devices and manage their tokens.", no_args_is_help=True)
users_app = typer.Typer(help="Logins for people: create, lock, unlock, reset passwords.", no_args_is_help=True)
mqtt_app = typer.Typer(help="The Mosquitto broker's password and ACL files.", no_args_is_help=True)
keys_app = typer.Typer(help="The keys that encrypt identifiers at rest.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: who read or changed what, and when.", no_args_is_help=True)
export_app = typer.Typer(help="Exports of patient data.", no_args_is_help=True)
app.add_typer(patients_app, name="patients")
app.add_typer(devices_app, name="devices")
app.add_typer(users_app, name="users")
app.add_typer(mqtt_app, name="mqtt")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(export_app, name="export")

err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--db", help="sqlite:///path.db or postgresql://... (VIGIL_DB)")]
MqttOption = Annotated[str | None, typer.Option("--mqtt", help="mqtt://host:1883 or mqtts://... (VIGIL_MQTT)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON value on stdout")]
CaFileOption = Annotated[str | None, typer.Option("--ca-file", help="CA certificate for mqtts:// and https:// servers "
                                                     "(VIGIL_CA_FILE; default: the system's CAs)")]
# vigil.admin names the field at fault; these are the options that carry those fields.
FIELD_OPTIONS = {"patient_id": "--patient", "device_id": "--device", "password": "password"}


def _emit(value: Any, as_json: bool, text: str) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(value).decode() + "\n")
    else:
        typer.echo(text)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _store(settings: Settings):
    from vigil.security.crypto import CryptoError, load_store_keys
    from vigil.store import open_store

    try:
        keys = load_store_keys(settings)
    except CryptoError as error:
        _fail(str(error))
    try:
        store = open_store(settings.db_url, keys)
    except CryptoError as error:
        _fail(f"cannot decrypt the store's identifiers with these keys: {error}")
    except Exception as error:  # unreachable server, bad URL: say so plainly
        _fail(f"cannot open store {settings.db_url}: {error}")
    missing = store.key_ids_in_use() - set(keys.field.keys)
    if missing:
        _fail(f"cannot decrypt the store's identifiers with these keys: they need key(s) {', '.join(sorted(missing))}, "
              "which VIGIL_KEY or VIGIL_HOME/keys does not hold")
    return store


def _audit(store, action: str, patient_id: str | None = None, outcome: str = "ok", **details) -> None:
    """Record what a command did, as the operator who ran it."""
    from vigil.security.policy import StoreOnly, operator, record

    record(StoreOnly(store), operator(), action, patient_id, outcome, **details)


def _admin_context(db: str | None):
    from vigil.admin import CommandContext

    settings = load_settings(db)
    return CommandContext(_store(settings), settings)


@contextmanager
def _admin_errors():
    """A change vigil.admin refuses exits with status 2, naming the option at fault."""
    from vigil.errors import AlreadyExists, InvalidInput, NotFound

    try:
        yield
    except (InvalidInput, AlreadyExists, NotFound) as error:
        _fail(f"{FIELD_OPTIONS.get(error.field, '--' + error.field)}: {error.reason}")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# -- patients --------------------------------------------------------------------------------
@patients_app.command("add")
def patients_add(
    name: Annotated[str, typer.Option("--name", help="full name")],
    birth_date: Annotated[str | None, typer.Option("--birth-date", help="YYYY-MM-DD")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="female, male, other, unknown")] = None,
    condition: Annotated[list[str] | None, typer.Option("--condition", help="repeatable")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    address: Annotated[str | None, typer.Option("--address")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="free-text notes")] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a patient; name, birth date, contact details and notes are stored encrypted."""
    from datetime import date

    if birth_date:
        try:
            date.fromisoformat(birth_date)
        except ValueError:
            _fail(f"--birth-date: {birth_date!r} is not a date in YYYY-MM-DD form")
    if not name.strip():
        _fail("--name: must not be empty")
    store = _store(load_settings(db))
    patient = store.add_patient(name.strip(), birth_date, sex, condition or [], phone, email, address, notes)
    _audit(store, "patient.add", patient.patient_id)
    _emit({"patient_id": patient.patient_id}, as_json, f"patient {patient.patient_id} added")


@patients_app.command("list")
def patients_list(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List every patient (an audited read)."""
    from vigil.security.policy import StoreOnly, operator, visible_patient_ids

    store = _store(load_settings(db))
    rows = [
        {"patient_id": p.patient_id, "name": p.name, "birth_date": p.birth_date, "sex": p.sex, "conditions": list(p.conditions)}
        for p in store.list_patients(visible_patient_ids(operator(), StoreOnly(store), "patients.list"))
    ]
    _emit(rows, as_json, "\n".join(f"{r['patient_id']}  {r['name']}  {', '.join(r['conditions'])}" for r in rows) or "no patients")


@patients_app.command("assign")
def patients_assign(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    clinician: Annotated[str, typer.Option("--clinician", help="clinician's username")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Give a clinician access to a patient."""
    from vigil.admin import assign
    from vigil.security.policy import operator

    with _admin_errors():
        assign(_admin_context(db), operator(), patient, clinician)
    _emit({"patient_id": patient, "clinician": clinician}, as_json, f"{clinician} now cares for {patient}")


@patients_app.command("unassign")
def patients_unassign(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    clinician: Annotated[str, typer.Option("--clinician", help="clinician's username")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """End a clinician's access to a patient."""
    from vigil.admin import unassign
    from vigil.security.policy import operator

    with _admin_errors():
        unassign(_admin_context(db), operator(), patient, clinician)
    _emit({"patient_id": patient, "clinician": clinician, "assigned": False}, as_json,
          f"{clinician} no longer cares for {patient}")


# -- devices ---------------------------------------------------------------------------------
@devices_app.command("add")
def devices_add(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    kind: Annotated[str, typer.Option("--kind", help="wearable, bp_cuff, cgm, pump, ...")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a device; its token is printed once and stored only as a hash."""
    from vigil.admin import add_device
    from vigil.security.policy import operator

    with _admin_errors():
        device, token = add_device(_admin_context(db), operator(), patient, kind)
    _emit({"device_id": device.device_id, "token": token}, as_json,
          f"device {device.device_id}\ntoken  {token}\n(the token is shown only once)")


@devices_app.command("revoke")
def devices_revoke(device: Annotated[str, typer.Option("--device")], db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Revoke a device's token: its readings are refused from now on."""
    from vigil.admin import revoke_device
    from vigil.security.policy import operator

    with _admin_errors():
        revoke_device(_admin_context(db), operator(), device)
    _emit({"device_id": device, "revoked": True}, as_json, f"device {device} revoked")


@devices_app.command("rotate")
def devices_rotate(device: Annotated[str, typer.Option("--device")], db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Issue a device a new token; the old one stops working."""
    from vigil.admin import rotate_device
    from vigil.security.policy import operator

    with _admin_errors():
        token = rotate_device(_admin_context(db), operator(), device)
    _emit({"device_id": device, "token": token}, as_json, f"device {device}\ntoken  {token}")


@devices_app.command("list")
def devices_list(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List devices (never their tokens; an audited read)."""
    from vigil.admin import list_devices
    from vigil.security.policy import operator

    rows = [
        {"device_id": d.device_id, "patient_id": d.patient_id, "kind": d.kind, "revoked": d.revoked}
        for d in list_devices(_admin_context(db), operator())
    ]
    _emit(rows, as_json, "\n".join(f"{r['device_id']}  {r['patient_id']}  {r['kind']}{'  revoked' if r['revoked'] else ''}" for r in rows) or "no devices")


# -- users -----------------------------------------------------------------------------------
@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Option("--username")],
    role: Annotated[str, typer.Option("--role", help="admin, clinician or patient")],
    patient: Annotated[str | None, typer.Option("--patient", help="for role patient: their patient id")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a login. Without --password-stdin you are prompted for the password."""
    from vigil.admin import add_user, check_new_user
    from vigil.security.policy import operator

    ctx = _admin_context(db)
    with _admin_errors():
        check_new_user(ctx.store, username, role, patient)  # before asking for a password
        add_user(ctx, operator(), username, role, _new_password(password_stdin), patient)
    _emit({"username": username}, as_json, f"user {username} ({role}) added")


def _new_password(from_stdin: bool) -> str:
    return sys.stdin.readline().rstrip("\n") if from_stdin else typer.prompt("Password", hide_input=True, confirmation_prompt=True)


UsernameOption = Annotated[str, typer.Option("--username")]


@users_app.command("list")
def users_list(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List logins with their role, patient, one-time codes and lock state (an audited read)."""
    from vigil.admin import list_users
    from vigil.security.policy import operator

    rows = [{"username": u.username, "role": u.role, "patient_id": u.patient_id, "totp_enabled": u.totp_enabled,
             "locked": u.locked} for u in list_users(_admin_context(db), operator())]
    _emit(rows, as_json, "\n".join(f"{r['username']}  {r['role']}{'  locked' if r['locked'] else ''}" for r in rows) or "no users")


@users_app.command("password")
def users_password(username: UsernameOption, password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
                   db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Set a user's password; every session and bearer token they hold ends."""
    from vigil.admin import set_password
    from vigil.security.policy import operator

    with _admin_errors():
        ended = set_password(_admin_context(db), operator(), username, _new_password(password_stdin))
    _emit({"username": username, "sessions_ended": ended}, as_json, f"password of {username} set; {ended} sessions ended")


@users_app.command("lock")
def users_lock(username: UsernameOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Refuse this user's logins until unlocked; every session and bearer token they hold ends."""
    from vigil.admin import lock_user
    from vigil.security.policy import operator

    with _admin_errors():
        ended = lock_user(_admin_context(db), operator(), username)
    _emit({"username": username, "locked": True, "sessions_ended": ended}, as_json, f"{username} locked; {ended} sessions ended")


@users_app.command("unlock")
def users_unlock(username: UsernameOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Allow this user's logins again (also lifting a lockout after failed logins)."""
    from vigil.admin import unlock_user
    from vigil.security.policy import operator

    with _admin_errors():
        unlock_user(_admin_context(db), operator(), username)
    _emit({"username": username, "locked": False}, as_json, f"{username} unlocked")


@users_app.command("totp")
def users_totp(
    username: Annotated[str, typer.Option("--username")],
    disable: Annotated[bool, typer.Option("--disable", help="turn one-time codes off again")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Require a one-time code (RFC 6238) at this user's login; prints the provisioning URI once."""
    from vigil.security.totp import new_secret, provisioning_uri

    store = _store(load_settings(db))
    if store.get_user(username) is None:
        _fail(f"--username: no user {username!r}")
    secret = None if disable else new_secret()
    store.set_totp_secret(username, secret)
    _audit(store, "permission.totp", username=username, enabled=not disable)
    if disable:
        _emit({"username": username, "totp": False}, as_json, f"one-time codes off for {username}")
    else:
        uri = provisioning_uri(secret, username)
        _emit({"username": username, "totp": True, "provisioning_uri": uri}, as_json,
              f"{uri}\n(add it to an authenticator app now; it is shown only once)")


# -- broker ----------------------------------------------------------------------------------
def _tls_pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """--tls-cert and --tls-key: both (existing files) or neither."""
    if (cert is None) != (key is None):
        _fail("--tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            _fail(f"{option}: {path} is not a file")
    return (cert.resolve(), key.resolve()) if cert and key else None


TlsCertOption = Annotated[Path | None, typer.Option("--tls-cert", help="server certificate chain (PEM)")]
TlsKeyOption = Annotated[Path | None, typer.Option("--tls-key", help="its private key (PEM)")]


@mqtt_app.command("config")
def mqtt_config(
    out: Annotated[Path | None, typer.Option("--out", help="directory (default VIGIL_HOME/mosquitto)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="default 1883, or 8883 with TLS")] = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="CA certificate that issued --tls-cert (PEM)")] = None,
    db: DbOption = None,
) -> None:
    """Write Mosquitto's password file, ACL file and a mosquitto.conf from the device registry (TLS-only with --tls-*)."""
    from vigil.ingest.mosquitto import PID_FILE, SERVICE_USER, BrokerTls, broker_config, write_broker_files

    pair = _tls_pair(tls_cert, tls_key)
    if pair and (tls_ca is None or not tls_ca.is_file()):
        _fail("--tls-ca: the CA certificate file is required with --tls-cert")
    tls = BrokerTls(pair[0], pair[1], tls_ca.resolve()) if pair else None
    settings = load_settings(db)
    directory = out or settings.home / "mosquitto"
    files = write_broker_files(directory, _store(settings).mqtt_credentials(), settings.secret("mqtt-service.key"))
    config = broker_config(files, port or (8883 if tls else 1883), tls=tls, pid_file=directory.resolve() / PID_FILE)
    (directory / "mosquitto.conf").write_text(config)
    err.print(f"wrote {files.password_file}, {files.acl_file} and {directory / 'mosquitto.conf'}")
    err.print(f"ingest service user: {SERVICE_USER} (password in {settings.keys_dir / 'mqtt-service.key'})")


# -- keys, audit, exports --------------------------------------------------------------------
@keys_app.command("rotate")
def keys_rotate(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Encrypt every identifier under a new key; old keys stay until nothing needs them (safe to interrupt and rerun).

    With VIGIL_KEY, put the new key first (VIGIL_KEY=NEW,OLD) and run this to move everything to it.
    """
    from dataclasses import replace

    from vigil.security.crypto import save_keyring

    settings = load_settings(db)
    store = _store(settings)
    ring = store.keys.field
    if settings.field_key and store.key_ids_in_use() <= {ring.current}:
        _fail("VIGIL_KEY: everything is under its first key already; put a new key first "
              "(VIGIL_KEY=NEW,OLD, a new key from `openssl rand -base64 32`) and run this again")
    if not settings.field_key:
        ring = ring.with_new_current_key()
        save_keyring(settings, ring)  # before re-encrypting: an interrupted run leaves every value readable
        store.keys = replace(store.keys, field=ring)
    changed = store.reencrypt_identifiers()
    in_use = store.key_ids_in_use()
    retired = sorted(set(ring.keys) - in_use - {ring.current})
    if not settings.field_key:
        save_keyring(settings, ring.retaining(in_use))  # a key still needed (written meanwhile) stays
    _audit(store, "keys.rotate", key_id=ring.current, reencrypted=changed)
    _emit({"key_id": ring.current, "reencrypted": changed, "no_longer_needed": retired}, as_json,
          f"{changed} values now under key {ring.current}; no longer needed: {', '.join(retired) or 'none'}")


def _audit_key(settings: Settings) -> bytes:
    from vigil.security.audit import AUDIT_KEY_FILE

    if not (settings.keys_dir / AUDIT_KEY_FILE).exists():
        _fail(f"no audit key at {settings.keys_dir / AUDIT_KEY_FILE}: set VIGIL_HOME to the one the server uses")
    return settings.secret(AUDIT_KEY_FILE).encode()


HEAD_HELP = "SEQ:HASH, the head an earlier verify printed: fail if that entry is gone or changed (newest entries deleted)"


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[str | None, typer.Option("--expect-head", help=HEAD_HELP)] = None,
    head_file: Annotated[Path | None, typer.Option("--head-file", help="expect the head kept in this file (if it "
                                                      "exists), and keep the verified head there; store it apart from the database")] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the whole chain, and that it still holds the head noted before; exit status 1 if any entry was
    edited, reordered or deleted."""
    from vigil.security.audit import GENESIS_HASH, Head, head_problems, verify_chain

    expected = _expected_head(expect_head, head_file)
    settings = load_settings(db)
    key, store = _audit_key(settings), _store(settings)
    count, head = 0, Head(0, GENESIS_HASH)

    def entries():
        nonlocal count, head
        while batch := store.audit_entries(after_seq=head.seq):
            count, head = count + len(batch), Head(batch[-1].seq, batch[-1].hash)
            yield from batch

    problems = verify_chain(entries(), key)
    if expected:
        problems += head_problems(expected, store.audit_entry(expected.seq))
    if head_file and not problems:
        head_file.write_text(f"{head}\n")
    result = {"entries": count, "intact": not problems, "problems": problems[:100], "head": {"seq": head.seq, "hash": head.hash}}
    _emit(result, as_json, "\n".join(problems[:100]) if problems else f"audit log intact: {count} entries, head {head}")
    if problems:
        raise typer.Exit(1)


def _expected_head(expect_head: str | None, head_file: Path | None):
    """The head given by --expect-head or kept in --head-file (None if neither, or the file is not there yet)."""
    from vigil.security.audit import Head

    if expect_head and head_file:
        _fail("--expect-head, --head-file: give one of them")
    if head_file and not head_file.parent.is_dir():
        _fail(f"--head-file: {head_file.parent} is not a directory")
    if expect_head:
        option, text = "--expect-head", expect_head
    elif head_file and head_file.is_file():
        option, text = "--head-file", head_file.read_text()
    else:
        return None
    try:
        return Head.parse(text)
    except ValueError as error:
        _fail(f"{option}: {error}")


@audit_app.command("show")
def audit_show(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Who read or changed this patient's data, and when (itself an audited read)."""
    from vigil.api.gates import visible_patient
    from vigil.errors import NotFound
    from vigil.security.policy import StoreOnly, operator

    store = _store(load_settings(db))
    try:
        visible_patient(patient, operator(), StoreOnly(store), "audit.show")
    except NotFound:
        _fail(f"--patient: no patient {patient!r}")
    entries = [e.as_json() for e in store.audit_entries_for_patient(patient)]
    _emit(entries, as_json, "\n".join(f"{e['time']}  {e['actor']:24s} {e['action']:22s} {e['outcome']:7s} {e['resource']}"
                                      for e in entries))


@export_app.command("deid")
def export_deid(
    out: Annotated[Path, typer.Option("--out", help="directory for patients.csv, readings.csv, alerts.csv")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """De-identified research export (HIPAA Safe Harbor): no identifiers, dates shifted per patient, ages 90+ grouped."""
    from vigil.security.deid import deidentify, write_csv
    from vigil.security.policy import StoreOnly, operator, visible_patient_ids
    from vigil.timeutil import utc_now

    store = _store(load_settings(db))
    patients = store.list_patients(visible_patient_ids(operator(), StoreOnly(store), "export.deid"))
    data = deidentify(patients, lambda pid: store.query_readings(pid), lambda pid: store.list_alerts([pid], limit=1_000_000),
                      utc_now().date())
    written = write_csv(data, out)
    counts = {"patients": len(data.patients), "readings": len(data.readings), "alerts": len(data.alerts)}
    _emit({**counts, "files": [str(p) for p in written]}, as_json, f"wrote {', '.join(p.name for p in written)} to {out}")


# -- running ---------------------------------------------------------------------------------
def _start_mqtt(ctx, settings: Settings, client_id: str):
    from vigil.ingest.mosquitto import SERVICE_USER
    from vigil.ingest.mqtt import MqttIngestor
    from vigil.mqtt import MqttEndpoint, parse_mqtt_url

    endpoint = parse_mqtt_url(settings.mqtt_url)
    if endpoint.username is None:
        endpoint = MqttEndpoint(endpoint.host, endpoint.port, endpoint.tls, SERVICE_USER, settings.secret("mqtt-service.key"))
    ingestor = MqttIngestor(ctx.ingest, endpoint, client_id=client_id, ca_file=settings.ca_file)
    ingestor.start()
    err.print(f"ingesting MQTT from {endpoint.host}:{endpoint.port}")
    return ingestor


def _serve_until_stopped(asgi_app, host: str, port: int, log_level: str, tls: tuple[Path, Path] | None = None) -> None:
    """Run uvicorn (HTTPS with `tls` = (certificate, key)) in a thread until Ctrl-C or SIGTERM, then shut it
    down gracefully (exit status 0)."""
    import uvicorn

    cert, key = tls or (None, None)
    server = uvicorn.Server(uvicorn.Config(asgi_app, host=host, port=port, log_level=log_level,
                                           ssl_certfile=cert, ssl_keyfile=key))
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    thread.start()
    while thread.is_alive() and not stop.wait(0.5):
        pass
    server.should_exit = True
    thread.join(30)
    if not server.started:
        _fail(f"could not serve on {host}:{port} (see the log above)")


def _with_ca(settings: Settings, ca_file: str | None) -> Settings:
    from dataclasses import replace

    return replace(settings, ca_file=ca_file) if ca_file else settings


@app.command()
def serve(
    db: DbOption = None,
    mqtt: MqttOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Secure cookies without --tls-* "
                                                 "(behind a TLS-terminating proxy)")] = False,
    ca_file: CaFileOption = None,
) -> None:
    """Serve the API and dashboard (HTTPS with --tls-cert/--tls-key); with --mqtt also ingest from the broker."""
    from vigil.api.context import AppContext
    from vigil.web.app import create_app

    _logging()
    tls = _tls_pair(tls_cert, tls_key)
    settings = _with_ca(load_settings(db, mqtt), ca_file)
    ctx = AppContext.build(settings, _store(settings), tls=tls is not None, secure_cookies=secure_cookies)
    ctx.pipeline.warm_up()
    ingestor = _start_mqtt(ctx, settings, "vigil-serve") if settings.mqtt_url else None
    try:
        _serve_until_stopped(create_app(ctx), host, port, "info", tls)
    finally:
        if ingestor:
            ingestor.stop()


@app.command()
def worker(
    db: DbOption = None,
    mqtt: MqttOption = None,
    client_id: Annotated[str, typer.Option("--client-id", help="unique per worker")] = "vigil-worker",
    ca_file: CaFileOption = None,
) -> None:
    """Stream processor: ingest from MQTT (mqtts:// for TLS), clean, score, alert. Several may share the work."""
    from vigil.api.context import AppContext

    _logging()
    settings = _with_ca(load_settings(db, mqtt), ca_file)
    if not settings.mqtt_url:
        _fail("--mqtt: required (or set VIGIL_MQTT)")
    ctx = AppContext.build(settings, _store(settings))
    ctx.pipeline.warm_up()
    ingestor = _start_mqtt(ctx, settings, client_id)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(30):
        err.print(f"worker stats: {dict(ingestor.stats)}")
    ingestor.stop()




# -- simulation ------------------------------------------------------------------------------
def _progress_reporter(progress, task, start, hours: float | None):
    def report(state) -> None:
        done = (state.sim_time - start).total_seconds() / 3600
        progress.update(
            task, completed=done if hours else 0,
            description=f"sim {state.sim_time:%Y-%m-%d %H:%M} UTC · {state.totals.readings_sent} sent · "
                        f"{state.totals.duplicates} dup · {state.pending} pending",
        )

    return report


FINITE_RUN_FLUSH_SECONDS = 900.0
"""A run of --hours H delivers everything it generated (retrying for up to 15 min), however fast it was generated."""


@app.command()
def simulate(
    patients: Annotated[int, typer.Option("--patients", min=1, max=500, help="number of simulated patients")],
    url: Annotated[str | None, typer.Option("--url", help="Vigil's HTTP base URL, e.g. http://127.0.0.1:8000")] = None,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")] = None,
    speed: Annotated[float, typer.Option("--speed", min=0.01, help="simulated seconds per wall-clock second")] = 1.0,
    hours: Annotated[float | None, typer.Option("--hours", min=0.01, help="simulate the last H hours, then stop")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    replay: Annotated[Path | None, typer.Option("--replay", help="replay real ICU stays from PhysioNet 2019 PSV files "
                                                   "(a directory or .tar.gz) instead of simulating")] = None,
    db: DbOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Run N simulated patients' devices (or N replayed ICU stays) as real clients over HTTP or MQTT.

    Patients and devices are registered in the store (--db / VIGIL_DB) on the first run and reused after.
    """
    from datetime import timedelta

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vigil.admin import refresh_broker_files
    from vigil.demo import register_replay, register_ward, simulation_start
    from vigil.devices import SimClock, WardSimulator, build_clients, mixed_ward, run_simulation, transport_for_url
    from vigil.timeutil import utc_now

    if (url is None) == (mqtt is None):
        _fail("give exactly one of --url or --mqtt")
    settings = load_settings(db)
    store = _store(settings)
    if replay is not None:
        from vigil.devices.replay import StayReplay, replay_hours

        stays = _load_stays_with_progress(replay, limit=patients)
        hours = hours or replay_hours(stays)
        start = utc_now() - timedelta(hours=hours)
        credentials = register_replay(store, stays, settings.home / "simulator" / f"replay-{replay.stem}.json")
        refresh_broker_files(settings, store)
        simulator = StayReplay(stays, start)
    else:
        start = utc_now() - timedelta(hours=hours) if hours else simulation_start(store)
        profiles = mixed_ward(patients, seed)
        credentials = register_ward(store, profiles, settings.home / "simulator" / f"ward-seed{seed}.json", start)
        refresh_broker_files(settings, store)
        simulator = WardSimulator(profiles, start, seed)
    try:
        transport = transport_for_url(url or mqtt, ca_file=ca_file or settings.ca_file)
    except ValueError as error:
        _fail(str(error))
    clients = build_clients(credentials, transport, seed)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    err.print(f"{'replaying' if replay else 'simulating'} {patients} patients from {start:%Y-%m-%d %H:%M} UTC "
              f"at {speed:g}x to {url or mqtt}")
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("starting", total=hours)
        final = run_simulation(simulator, clients, SimClock(simulator.start, speed), stop, hours,
                               _progress_reporter(progress, task, simulator.start, hours),
                               flush_seconds=FINITE_RUN_FLUSH_SECONDS if hours else 30.0)
    transport.close()
    totals = final.totals
    err.print(f"sent {totals.readings_sent} readings in {totals.batches_sent} batches "
              f"({totals.batches_resent} resent, {totals.duplicates} duplicates, {final.pending} undelivered)")


@app.command()
def demo(
    patients: Annotated[int, typer.Option("--patients", min=1, max=200)] = 12,
    speed: Annotated[float, typer.Option("--speed", min=1, help="simulated seconds per second until live")] = 60.0,
    port: Annotated[int, typer.Option("--port")] = 8000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> None:
    """A simulated ward streaming into the dashboard: SQLite under ./vigil-data, login printed."""
    from vigil.api.context import AppContext
    from vigil.demo import (
        DEMO_ONSET,
        ensure_demo_login,
        in_process_delivery,
        patient_ids,
        prescribe_virtual_patients,
        register_ward,
        simulation_start,
        ward_started_at,
    )
    from vigil.devices import InProcessTransport, SimClock, WardSimulator, build_clients, mixed_ward, run_simulation
    from vigil.web.app import create_app

    _logging()
    logging.getLogger("vigil.devices").setLevel(logging.WARNING)
    settings = load_settings()
    ctx = AppContext.build(settings, _store(settings))
    login = ensure_demo_login(ctx.store, settings)
    manifest = settings.home / "simulator" / f"demo-seed{seed}.json"
    start = simulation_start(ctx.store)
    onset = ward_started_at(manifest, start) + DEMO_ONSET - start  # negative once a resumed course is under way
    profiles = mixed_ward(patients, seed, onset=onset)
    credentials = register_ward(ctx.store, profiles, manifest, start)
    for patient_id in patient_ids(manifest):
        ctx.store.assign(patient_id, login.username)
    prescribe_virtual_patients(ctx.pipeline, profiles, manifest)
    ctx.pipeline.warm_up()
    simulator = WardSimulator(profiles, start, seed)
    clients = build_clients(credentials, InProcessTransport(in_process_delivery(ctx)), seed)
    stop = threading.Event()
    runner = threading.Thread(
        target=run_simulation, args=(simulator, clients, SimClock(start, speed), stop), kwargs={"flush_seconds": 5},
        name="simulator", daemon=True,
    )
    Console().print(
        f"[bold]Vigil demo[/bold]: {patients} simulated patients from {start:%H:%M} UTC at {speed:g}x "
        f"(store {settings.db_url})\n"
        f"  dashboard  http://{host}:{port}/\n  login      {login.username} / {login.password}\n"
        "  Ctrl-C stops; running again resumes."
    )
    runner.start()
    try:
        _serve_until_stopped(create_app(ctx), host, port, "warning")
    finally:
        stop.set()
        runner.join(15)
        err.print("demo stopped; data kept in " + str(settings.home))


# -- benchmarks ------------------------------------------------------------------------------
bench_app = typer.Typer(help="Benchmarks; ratios are against a baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("ingest")
def bench_ingest_command(
    readings: Annotated[int, typer.Option("--readings", min=100)] = 20_000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=5000, help="20 = five minutes of a wearable")] = 20,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Readings per second: store only (baseline), signal+care pipeline, and HTTP ingestion end to end."""
    from rich.progress import Progress

    from vigil.bench import bench_ingest

    with Progress(console=err) as progress:
        task = progress.add_task("benchmarking ingestion", total=3 * -(-readings // batch_size))
        result = bench_ingest(readings, batch_size, lambda: progress.advance(task), db)
    lines = [f"{phase:16s} {result[phase]['readings_per_second']:>10,.0f} readings/s   batch p50 "
             f"{result[phase]['batch_p50_ms']:.1f} ms  p99 {result[phase]['batch_p99_ms']:.1f} ms"
             for phase in ("store_only", "pipeline_only", "http_end_to_end")]
    _emit(result, as_json, "\n".join(lines) + f"\nHTTP / store-only throughput: {result['http_vs_store_only']:.2f}")


@bench_app.command("alerts")
def bench_alerts_command(
    seeds: Annotated[str, typer.Option("--seeds", help="comma-separated ward seeds")] = "1,2,3",
    patients: Annotated[int, typer.Option("--patients", min=4, max=100)] = 12,
    hours: Annotated[float, typer.Option("--hours", min=1, max=24 * 14)] = 24.0,
    as_json: JsonFlag = False,
) -> None:
    """Alerts on well patients and time to alert for the deteriorating one: Vigil vs alerting on every snapshot."""
    from rich.progress import Progress

    from vigil.bench import bench_alerts

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        _fail(f"--seeds: {seeds!r} is not a comma-separated list of integers")
    with Progress(console=err) as progress:
        task = progress.add_task("simulating wards", total=len(seed_list) * int(hours * 12))
        result = bench_alerts(seed_list, patients, hours, lambda: progress.advance(task))
    lines = [f"seed {seed}: " + "; ".join(
        f"{name} {run[name]['vital_sign_alerts_on_well_patients']} false alarms, first NEWS2 alert "
        f"{run[name]['deteriorating_first_news2_alert_minutes_after_onset']} min after onset" for name in run)
        for seed, run in result["seeds"].items()]
    lines.append(f"false alarms, Vigil / baseline: {result['false_alarm_ratio_vigil_vs_baseline']}")
    _emit(result, as_json, "\n".join(lines))


# -- risk models -----------------------------------------------------------------------------
risk_app = typer.Typer(help="Sepsis risk from hourly vitals and labs (PhysioNet 2019 Challenge format).",
                       no_args_is_help=True)
report_app = typer.Typer(help="Figures of the measured results.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")
app.add_typer(report_app, name="report")
EVALUATION_FILE = "reports/risk-evaluation.json"


def _load_stays_with_progress(data: Path, limit: int | None = None):
    from rich.progress import Progress

    from vigil.datasets.physionet import PsvFormatError, load_stays

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"reading {data.name}", total=limit)
        try:
            return load_stays(data, limit=limit, progress=lambda n: progress.advance(task, n))
        except (PsvFormatError, ValueError) as error:
            _fail(str(error))


@risk_app.command("evaluate")
def risk_evaluate(
    data: Annotated[Path, typer.Argument(help="a directory of .psv files or the .tar.gz")],
    models: Annotated[str | None, typer.Option("--models", help="comma-separated; default all available")] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, max=10)] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=10, help="patient-bootstrap replicates")] = 200,
    save: Annotated[Path | None, typer.Option("--save", help=f"default VIGIL_HOME/{EVALUATION_FILE}")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Patient-level cross-validation of every model against the NEWS2 and qSOFA rules."""
    from rich.progress import Progress

    from vigil.models.evaluation import Dataset, evaluate
    from vigil.models.reporting import markdown_table
    from vigil.models.zoo import available_models

    names = [m.strip() for m in models.split(",")] if models else available_models()
    unknown = sorted(set(names) - set(available_models()))
    if unknown:
        _fail(f"--models: unknown or unavailable {', '.join(unknown)}; available: {', '.join(available_models())}")
    dataset = Dataset.from_frame(_load_stays_with_progress(data))
    with Progress(console=err) as progress:
        task = progress.add_task("cross-validating", total=len(names) * folds)
        result = evaluate(dataset, names, folds, seed, bootstrap,
                          lambda message: progress.update(task, advance=1, description=message))
    result["data"] = str(data)
    target = save or load_settings().home / EVALUATION_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(orjson.dumps(result).decode())
    err.print(f"saved to {target}")
    _emit({k: v for k, v in result.items()}, as_json, markdown_table(result))


@risk_app.command("train")
def risk_train(
    data: Annotated[Path, typer.Argument(help="a directory of .psv files or the .tar.gz")],
    out: Annotated[Path, typer.Option("--out", help="where to write the model (JSON)")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the calibrated LightGBM sepsis model on all of DATA."""
    from datetime import date

    from vigil.models.evaluation import Dataset, fit_calibrated
    from vigil.models.risk import export_lightgbm

    dataset = Dataset.from_frame(_load_stays_with_progress(data))
    with err.status("training LightGBM on every stay"):
        fitted = fit_calibrated("lightgbm", dataset, seed)
    metadata = {"trained_on": str(data), "stays": len(set(dataset.stays)), "hours": len(dataset.y),
                "seed": seed, "date": date.today().isoformat(), "vigil": __import__("vigil").__version__}
    model = export_lightgbm(fitted, metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    err.print(f"model written to {out} ({out.stat().st_size / 1e6:.1f} MB, threshold {model.threshold:.3f})")


@risk_app.command("score")
def risk_score(
    in_dir: Annotated[Path, typer.Argument(help="directory of Challenge .psv files")],
    out_dir: Annotated[Path, typer.Argument(help="where to write one output file per input file")],
    model: Annotated[Path | None, typer.Option("--model", help="default: the model shipped with Vigil")] = None,
) -> None:
    """Hourly sepsis probability and label for every row of every file, each from rows up to that hour."""
    from rich.progress import Progress

    from vigil.datasets.physionet import PsvFormatError
    from vigil.models.risk import SepsisRiskModel, default_model
    from vigil.models.scoring import score_directory

    if not in_dir.is_dir():
        _fail(f"IN_DIR: {in_dir} is not a directory")
    try:
        risk_model = SepsisRiskModel.load(model) if model else default_model()
    except (OSError, ValueError) as error:
        _fail(f"--model: {error}")
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("reading", total=None)
        try:
            count = score_directory(in_dir, out_dir, risk_model, lambda n: progress.advance(task, n))
        except (PsvFormatError, ValueError) as error:
            _fail(str(error))
    err.print(f"scored {count} files into {out_dir}")


def _saved_evaluation(sources: list[Path] | None) -> dict:
    """One or more saved `vigil risk evaluate` runs, merged (model subsets of one data set, folds and seed)."""
    from vigil.models.reporting import merge_evaluations

    paths = sources or [load_settings().home / EVALUATION_FILE]
    for path in paths:
        if not path.exists():
            _fail(f"--evaluation: {path} not found; run `vigil risk evaluate DATA` first")
    try:
        return merge_evaluations([orjson.loads(path.read_bytes()) for path in paths])
    except ValueError as error:
        _fail(f"--evaluation: {error}")


EvaluationFiles = Annotated[list[Path] | None, typer.Option(
    "--evaluation", help=f"saved run(s), repeatable to merge model subsets; default VIGIL_HOME/{EVALUATION_FILE}")]


@report_app.command("figures")
def report_figures(
    out: Annotated[Path, typer.Option("--out", help="directory for the PNG files")],
    evaluation: EvaluationFiles = None,
    glucose_forecast: Annotated[Path | None, typer.Option(
        "--glucose-forecast", help="a saved `vigil glucose forecast-eval --save` run; alone, only its figure")] = None,
) -> None:
    """Model-comparison and loss-curve figures from saved `vigil risk evaluate` runs, and the glucose-forecast figure."""
    from vigil.models.reporting import comparison_figure, loss_figure

    out.mkdir(parents=True, exist_ok=True)
    written = []
    if glucose_forecast:
        written.append(_glucose_forecast_figure(glucose_forecast, out))
    if evaluation or not glucose_forecast:
        result = _saved_evaluation(evaluation)
        comparison_figure(result, out / "risk-model-comparison.png")
        written.append("risk-model-comparison.png")
        if loss_figure(result, out / "risk-loss-curves.png"):
            written.append("risk-loss-curves.png")
    err.print(f"wrote {', '.join(written)} to {out}")


def _glucose_forecast_figure(saved: Path, out: Path) -> str:
    from vigil.glucose.forecast_report import forecast_figure

    if not saved.exists():
        _fail(f"--glucose-forecast: {saved} not found; run `vigil glucose forecast-eval --save {saved}` first")
    forecast_figure(orjson.loads(saved.read_bytes()), out / "glucose-forecast.png")
    return "glucose-forecast.png"


@report_app.command("table")
def report_table(evaluation: EvaluationFiles = None, as_json: JsonFlag = False) -> None:
    """The model-comparison table (Markdown, or --json) of saved `vigil risk evaluate` runs."""
    from vigil.models.reporting import markdown_table

    result = _saved_evaluation(evaluation)
    _emit(result, as_json, markdown_table(result))


@bench_app.command("score")
def bench_score_command(
    data: Annotated[Path, typer.Argument(help="PhysioNet 2019 files: a directory or the .tar.gz")],
    stays: Annotated[int, typer.Option("--stays", min=1)] = 3000,
    as_json: JsonFlag = False,
) -> None:
    """Time `vigil risk score` (shipped model) on N stays, against only reading and writing the same files."""
    from rich.progress import Progress

    from vigil.bench import bench_score

    with Progress(console=err) as progress:
        task = progress.add_task("benchmarking risk scoring", total=3)
        result = bench_score(data, stays, lambda: progress.advance(task))
    _emit(result, as_json, f"{result['stays']} stays, {result['hours']} hours scored in {result['score_seconds']} s "
                           f"({result['hours_per_second']} hours/s); reading and writing alone: "
                           f"{result['read_write_only_seconds']} s")


# -- glucose (type-1 diabetes) -------------------------------------------------------------------
glucose_app = typer.Typer(help="Type-1 diabetes on the UVA/Padova simulator (simglucose): forecasts and therapy.",
                          no_args_is_help=True)
app.add_typer(glucose_app, name="glucose")
PatientsOption = Annotated[str, typer.Option("--patients", help="all, child, adolescent, adult or NAME,NAME,...")]


def _virtual_patients(selection: str) -> list[str]:
    from vigil.glucose.body import patient_names

    try:
        return patient_names(selection)
    except ValueError as error:
        _fail(f"--{error}")
        raise


def _save_json(result: dict, save: Path | None) -> None:
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        err.print(f"saved to {save}")


@glucose_app.command("simulate")
def glucose_simulate(
    patients: PatientsOption = "all",
    days: Annotated[int, typer.Option("--days", min=1, max=60)] = 7,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline",
                                           help="also run simglucose's BBController on the same meals")] = False,
    workers: Annotated[int, typer.Option("--workers", min=0, help="parallel processes (0: one per CPU)")] = 0,
    save: Annotated[Path | None, typer.Option("--save", help="also write the result (JSON) here")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Closed loop: virtual patients follow every piece of Vigil's advice for DAYS days of random meals."""
    import os

    from rich.progress import Progress

    from vigil.glucose.simulation import closed_loop_result, simulate_cohort

    names = _virtual_patients(patients)
    controllers = ("vigil", "bb") if baseline else ("vigil",)
    with Progress(console=err) as progress:
        task = progress.add_task("closed loop", total=len(names) * len(controllers))
        runs = simulate_cohort(names, days, seed, controllers, workers or os.cpu_count() or 1,
                               lambda run: progress.update(task, advance=1, description=f"{run.controller} {run.patient}"))
    result = closed_loop_result(runs, controllers, days, seed)
    _save_json(result, save)
    _emit(result, as_json, _closed_loop_text(result))


def _closed_loop_text(result: dict) -> str:
    rows = [("vigil", name, metrics) for name, metrics in result["groups"].items()]
    rows += [(controller, name, metrics) for controller, summary in result["baselines"].items()
             for name, metrics in summary["groups"].items()]
    rows += [("vigil", "overall", result["overall"])]
    rows += [(controller, "overall", summary["overall"]) for controller, summary in result["baselines"].items()]
    lines = [f"{'controller':<10} {'group':<11} {'TIR':>6} {'<70':>6} {'<54':>6} {'>180':>6} {'mean':>6}"]
    lines += [f"{c:<10} {g:<11} {m['tir']:>6.1%} {m['tbr']:>6.2%} {m['tbr54']:>6.2%} {m['tar']:>6.1%} {m['mean_bg']:>6.1f}"
              for c, g, m in rows]
    return "\n".join(lines)


@glucose_app.command("forecast-eval")
def glucose_forecast_eval(
    patients: PatientsOption = "all",
    train_days: Annotated[int, typer.Option("--train-days", min=1)] = 4,
    test_days: Annotated[int, typer.Option("--test-days", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    save: Annotated[Path | None, typer.Option("--save", help="also write the result (JSON) here")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Glucose forecasts at 30 and 60 minutes on held-out simulated days: RMSE, MAE, Clarke A+B, per model."""
    from rich.progress import Progress
    from rich.table import Table

    from vigil.glucose.forecast_eval import forecast_evaluation, model_specs
    from vigil.glucose.forecast_report import column_titles, summary_rows

    names = _virtual_patients(patients)
    with Progress(console=err) as progress:
        task = progress.add_task("forecast evaluation", total=len(names) * (1 + len(model_specs())))
        result = forecast_evaluation(patients, train_days, test_days, seed,
                                     lambda message: progress.update(task, advance=1, description=message))
    _save_json(result, save)
    if as_json:
        _emit(result, True, "")
        return
    table = Table(*column_titles(result), title=f"{len(result['patients'])} patients, {test_days} held-out days each")
    for row in summary_rows(result):
        table.add_row(*row)
    Console().print(table)
