"""The CI dependency audit: which packages it audits, and when it fails."""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts import audit_dependencies
from scripts.audit_dependencies import AuditCrashed, installed_closure, parse_report, verdict


def test_audits_vigils_own_dependencies_transitively():
    pins = installed_closure()
    assert {"fastapi", "starlette", "argon2-cffi", "pyjwt", "pytest"} <= set(pins)  # direct, transitive, test extra
    assert "vigil" not in pins and all(version for version in pins.values())


def test_a_known_vulnerability_fails():
    report = {
        "dependencies": [
            {"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]},
            {"name": "idna", "version": "3.7", "vulns": []},
        ]
    }
    status, message = verdict(report)
    assert status == 1 and "requests 2.19.0: PYSEC-2018-28" in message


def test_unreachable_vulnerability_data_is_reported_not_failed():
    report = {"dependencies": [{"name": n, "skip_reason": "Dependency not found on PyPI"} for n in ("fastapi", "idna")]}
    status, message = verdict(report)
    assert status == 0 and message.startswith("dependency audit NOT performed")
    status, message = verdict(
        {"dependencies": [{"name": "idna", "version": "3.7", "vulns": []}, report["dependencies"][0]]}
    )
    assert status == 0 and "no known vulnerabilities in 1 audited dependencies (1 could not be audited)" in message


def test_a_crashed_pip_audit_fails_instead_of_passing_as_not_performed():
    crashed = subprocess.CompletedProcess(["pip-audit"], 2, stdout="", stderr="Traceback ...\nAttributeError: boom")
    with pytest.raises(AuditCrashed, match="exited 2 without a report"):
        parse_report(crashed)
    with pytest.raises(AuditCrashed, match="AttributeError: boom"):
        parse_report(crashed)
    with pytest.raises(AuditCrashed):
        parse_report(subprocess.CompletedProcess(["pip-audit"], 0, stdout='{"unexpected": 1}', stderr=""))


def test_a_finished_run_with_findings_is_parsed():
    report = {"dependencies": [{"name": "idna", "version": "3.7", "vulns": [{"id": "X-1"}]}]}
    assert parse_report(subprocess.CompletedProcess(["pip-audit"], 1, stdout=json.dumps(report), stderr="")) == report


def test_main_exits_1_when_pip_audit_crashes(monkeypatch, capsys):
    def crash(pins):
        raise AuditCrashed("pip-audit exited 1 without a report: boom")

    monkeypatch.setattr(audit_dependencies, "run_pip_audit", crash)
    assert audit_dependencies.main() == 1
    assert capsys.readouterr().out.startswith("dependency audit FAILED")
