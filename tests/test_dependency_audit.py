"""The CI dependency audit: which packages it audits, and when it fails."""

from __future__ import annotations

from scripts.audit_dependencies import installed_closure, verdict


def test_audits_vigils_own_dependencies_transitively():
    pins = installed_closure()
    assert {"fastapi", "starlette", "argon2-cffi", "pyjwt", "pytest"} <= set(pins)  # direct, transitive, test extra
    assert "vigil" not in pins and all(version for version in pins.values())


def test_a_known_vulnerability_fails():
    report = {"dependencies": [{"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]},
                               {"name": "idna", "version": "3.7", "vulns": []}]}
    status, message = verdict(report)
    assert status == 1 and "requests 2.19.0: PYSEC-2018-28" in message


def test_unreachable_vulnerability_data_is_reported_not_failed():
    report = {"dependencies": [{"name": n, "skip_reason": "Dependency not found on PyPI"} for n in ("fastapi", "idna")]}
    status, message = verdict(report)
    assert status == 0 and message.startswith("dependency audit NOT performed")
    status, message = verdict({"dependencies": [{"name": "idna", "version": "3.7", "vulns": []}, report["dependencies"][0]]})
    assert status == 0 and "no known vulnerabilities in 1 audited dependencies (1 could not be audited)" in message
