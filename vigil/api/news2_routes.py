"""NEWS2 inputs a wearable cannot measure (supplemental oxygen, consciousness, SpO2 scale), recorded by clinicians."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.api.gates import clinical_action, current_user, visible_patient
from vigil.api.schemas import News2InputsHistory, News2InputsOut, Schema
from vigil.domain import Consciousness, News2Inputs, User
from vigil.errors import InvalidInput
from vigil.timeutil import utc_now

router = APIRouter(prefix="/api/v1")
Ctx = Annotated[AppContext, Depends(context)]
CurrentUser = Annotated[User, Depends(current_user)]
NoNul = r"^[^\x00]*$"


class News2InputsIn(Schema):
    """What the clinician observed now; a field left out keeps its last recorded value."""

    supplemental_oxygen: bool | None = Field(default=None, description="on supplemental oxygen now")
    oxygen_flow: float | None = Field(default=None, ge=0, le=100, description="L/min (LOINC 3151-8)")
    consciousness: Consciousness | None = Field(default=None, description="ACVPU")
    spo2_scale: Literal[1, 2] | None = Field(
        default=None, description="2 only for a prescribed 88-92 % target (hypercapnic respiratory failure)"
    )
    spo2_scale_reason: str | None = Field(default=None, max_length=500, pattern=NoNul)


def merged_inputs(previous: News2Inputs | None, given: News2InputsIn, patient_id: str, user: User) -> News2Inputs:
    """The new full record: the given fields over the last record, checked for consistency."""
    fields = given.model_dump(exclude_unset=True)
    if not fields:
        raise InvalidInput("record at least one of " + ", ".join(News2InputsIn.model_fields), field="body")
    last = {} if previous is None else vars(previous)
    record = {name: last.get(name) for name in News2InputsIn.model_fields} | fields
    record["spo2_scale"] = record["spo2_scale"] or 1
    _check_oxygen(record, fields)
    _check_scale(record)
    return News2Inputs(patient_id=patient_id, time=utc_now(), recorded_by=user.username, **record)


def _check_oxygen(record: dict, given: dict) -> None:
    flow = record["oxygen_flow"]
    if "oxygen_flow" in given and "supplemental_oxygen" not in given and flow is not None:
        record["supplemental_oxygen"] = flow > 0
    if record["supplemental_oxygen"] is False:
        if given.get("oxygen_flow"):
            raise InvalidInput("a flow above 0 L/min contradicts supplemental_oxygen false", field="oxygen_flow")
        record["oxygen_flow"] = None


def _check_scale(record: dict) -> None:
    if record["spo2_scale"] == 2 and not (record["spo2_scale_reason"] or "").strip():
        raise InvalidInput(
            "required for SpO2 scale 2 (e.g. hypercapnic respiratory failure with a prescribed 88-92 % target)",
            field="spo2_scale_reason",
        )
    if record["spo2_scale"] == 1:
        record["spo2_scale_reason"] = None


@router.get("/patients/{patient_id}/news2-inputs", tags=["patients"])
def get_news2_inputs(patient_id: str, user: CurrentUser, ctx: Ctx) -> News2InputsHistory:
    """The current record (None: nothing recorded, NEWS2 assumes air, Alert and scale 1) and every earlier one."""
    visible_patient(patient_id, user, ctx)
    history = [News2InputsOut.model_validate(record) for record in ctx.store.news2_inputs_history(patient_id)]
    return News2InputsHistory(current=history[0] if history else None, history=history)


@router.post("/patients/{patient_id}/news2-inputs", status_code=201, tags=["patients"])
async def record_news2_inputs(patient_id: str, given: News2InputsIn, user: CurrentUser, ctx: Ctx) -> News2InputsOut:
    """Record oxygen, consciousness or SpO2 scale (clinicians and admins; audited); NEWS2 is re-scored at once."""
    await run_in_threadpool(visible_patient, patient_id, user, ctx)
    history = await run_in_threadpool(ctx.store.news2_inputs_history, patient_id, 1)
    inputs = merged_inputs(history[0] if history else None, given, patient_id, user)
    await run_in_threadpool(
        clinical_action,
        patient_id,
        user,
        ctx,
        "news2_inputs.record",
        "patient not found",
        **given.model_dump(exclude_unset=True, mode="json"),
    )
    await run_in_threadpool(ctx.processor.record_news2_inputs, inputs)
    return News2InputsOut.model_validate(inputs)
