"""Dependency audit for CI: pip-audit over Vigil's own dependencies as installed (not the whole environment).

Exit status 1 on a known vulnerability, and 1 when pip-audit itself crashes (no JSON report): a broken audit
must not pass as a clean one. Only when pip-audit ran but could not reach its vulnerability data (it then
skips every package, or does not answer in time) does it say "NOT performed" and exit 0: nothing could be
checked, and that is not a finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

AUDIT_TIMEOUT_SECONDS = 600


def installed_closure(distribution: str = "vigil", extras: tuple[str, ...] = ("test",)) -> dict[str, str]:
    """Name -> installed version of `distribution`'s requirements (with these extras), transitively."""
    pins: dict[str, str] = {}
    pending = [(distribution, extras)]
    while pending:
        name, wanted_extras = pending.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in ("", *wanted_extras)):
                continue
            key = canonicalize_name(requirement.name)
            if key in pins:
                continue
            try:
                pins[key] = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                continue  # an optional dependency this environment does not have
            pending.append((requirement.name, tuple(requirement.extras)))
    return pins


def verdict(report: dict) -> tuple[int, str]:
    """Exit status and message for a `pip-audit --format json` report."""
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if vulnerable:
        lines = [f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}" for d in vulnerable]
        return 1, "known vulnerabilities in Vigil's dependencies:\n" + "\n".join(lines)
    if dependencies and not audited:
        return 0, (
            f"dependency audit NOT performed: pip-audit could not reach its vulnerability data for any of "
            f"{len(dependencies)} packages (first reason: {dependencies[0]['skip_reason']})"
        )
    skipped = len(dependencies) - len(audited)
    return 0, f"no known vulnerabilities in {len(audited)} audited dependencies ({skipped} could not be audited)"


class AuditCrashed(RuntimeError):
    """pip-audit exited without a JSON report: the audit did not run."""


def run_pip_audit(pins: dict[str, str]) -> dict:
    """pip-audit's JSON report on these pins; raises AuditCrashed when pip-audit produced none."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        requirements.flush()
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            requirements.name,
            "--no-deps",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=AUDIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            return {"dependencies": [{"name": n, "skip_reason": "pip-audit timed out"} for n in pins]}
    return parse_report(result)


def parse_report(result: subprocess.CompletedProcess) -> dict:
    """The JSON report of a finished pip-audit run (exit 0, or 1 with vulnerabilities found)."""
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict) or "dependencies" not in report:
        raise AuditCrashed(f"pip-audit exited {result.returncode} without a report: {result.stderr.strip()[-500:]}")
    return report


def main() -> int:
    try:
        report = run_pip_audit(installed_closure())
    except AuditCrashed as crash:
        print(f"dependency audit FAILED: {crash}")
        return 1
    status, message = verdict(report)
    print(message)
    return status


if __name__ == "__main__":
    sys.exit(main())
