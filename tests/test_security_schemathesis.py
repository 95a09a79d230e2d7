"""Property-based requests from the OpenAPI schema (schemathesis), anonymous and as a clinician: no 5xx,
and no response carries the identifiers of a patient the caller may not see; as an admin on the admin API:
no 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from vigil.security.identity import issue_token

EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def api_schema(ward):
    return schemathesis.openapi.from_asgi("/openapi.json", ward.client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _hidden_identifiers(ward) -> list[str]:
    """Alan Turing, the ward's second patient: neither anonymous callers nor dr_who may see him."""
    return [ward.other_patient_id, "Alan Turing", "1912-06-23"]


def _call_and_check(case, ward, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )
    for identifier in _hidden_identifiers(ward):
        assert identifier not in response.text, f"{case.method} {case.formatted_path} revealed {identifier}"


@schema.parametrize()
@EXAMPLES
def test_anonymous_client(case, ward):
    _call_and_check(case, ward, {})


@schema.parametrize()
@EXAMPLES
def test_clinician_client_also_on_a_patient_they_do_not_care_for(case, ward):
    headers = {"Authorization": f"Bearer {issue_token(ward.ctx.store, 'dr_who', ward.ctx.session_secret)}"}
    _call_and_check(case, ward, headers)
    if "patient_id" in (case.path_parameters or {}):
        case.path_parameters["patient_id"] = ward.other_patient_id
        _call_and_check(case, ward, headers)


@schema.include(tag="admin").parametrize()
@EXAMPLES
def test_admin_client_on_the_admin_api(case, ward):
    """Admins see every patient, so only the first half applies: no 5xx, whatever they send."""
    headers = {"Authorization": f"Bearer {issue_token(ward.ctx.store, 'root', ward.ctx.session_secret)}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )
