"""A CGM with insulin pump for a type-1 diabetic, driven by the UVA/Padova simulator (simglucose)."""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from typing import Any

from vigil.devices.artefacts import Dropout
from vigil.devices.device import SimulatedDevice
from vigil.devices.physiology import Physiology
from vigil.devices.readings import make_reading
from vigil.devices.seeding import seed_for

SENSOR = "GuardianRT"  # samples every 5 minutes
PUMP = "Insulet"
SIGNAL_LOSS_EPISODES_PER_DAY = 0.5
SIGNAL_LOSS_MINUTES = (15, 45)


def build_t1d_environment(virtual_patient: str, start: datetime, seed: int) -> tuple[Any, Any]:
    """A simglucose environment (patient, CGM sensor, pump, random meals) starting at `start`, and the
    patient's own basal-bolus therapy. simglucose is imported here because importing it takes seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # simglucose still imports pkg_resources
        from simglucose.actuator.pump import InsulinPump
        from simglucose.controller.basal_bolus_ctrller import BBController
        from simglucose.patient.t1dpatient import T1DPatient
        from simglucose.sensor.cgm import CGMSensor
        from simglucose.simulation.env import T1DSimEnv
        from simglucose.simulation.scenario_gen import RandomScenario
    logging.getLogger("simglucose").setLevel(logging.WARNING)  # it logs every meal and bolus at INFO
    naive_utc_start = start.astimezone(UTC).replace(tzinfo=None)  # simglucose's clock is naive
    environment = T1DSimEnv(
        T1DPatient.withName(virtual_patient, random_init_bg=True, seed=seed),
        CGMSensor.withName(SENSOR, seed=seed),
        InsulinPump.withName(PUMP),
        RandomScenario(start_time=naive_utc_start, seed=seed),
    )
    return environment, BBController()


class CgmDevice(SimulatedDevice):
    """Every 5 minutes: the CGM glucose; when they happen: the meal's carbs and the pump's bolus;
    the basal rate when it changes and on the hour. The simulator runs only as far as asked."""

    kind = "cgm"
    step_minutes = 5

    def __init__(self, physiology: Physiology, start: datetime, seed_parts: tuple[int | str, ...]):
        super().__init__(physiology, start, seed_parts)
        self.environment, self.therapy = build_t1d_environment(
            self.profile.virtual_patient, self._next_time, seed_for(*seed_parts)
        )
        self.signal_loss = Dropout(self.rng, SIGNAL_LOSS_EPISODES_PER_DAY, SIGNAL_LOSS_MINUTES)
        self._step = self.environment.reset()
        self._action = None
        self._basal_rate: float | None = None

    def measure(self, time: datetime) -> list[dict[str, Any]]:
        if self._action is not None:
            self._step = self.environment.step(self._action)
        observation, info = self._step.observation, self._step.info
        self._action = self.therapy.policy(observation, self._step.reward, self._step.done, **info)
        signal_lost = self.signal_loss.active(self.step_minutes)
        readings = [] if signal_lost else [make_reading("glucose", observation.CGM, time)]
        carbs = info["meal"] * info["sample_time"]  # the meal's grams, announced in this interval
        if carbs > 0:
            readings.append(make_reading("carbs", carbs, time))
        return readings + self._pump_readings(time, info["sample_time"])

    def _pump_readings(self, time: datetime, sample_time: float) -> list[dict[str, Any]]:
        """The bolus the therapy just ordered, and the basal rate when it changed or on the hour."""
        pump, readings = self.environment.pump, []
        bolus = pump.bolus(self._action.bolus) * sample_time  # U/min over the interval -> U
        if bolus > 0:
            readings.append(make_reading("insulin_bolus", bolus, time))
        basal_rate = round(pump.basal(self._action.basal) * 60, 2)  # U/min -> U/h
        if basal_rate != self._basal_rate or time.minute == 0:
            readings.append(make_reading("insulin_basal", basal_rate, time))
            self._basal_rate = basal_rate
        return readings
