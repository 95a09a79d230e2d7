"""The simulated ward: patients, their wearables, BP cuffs and CGMs, and the clients that upload readings."""

from vigil.devices.client import RELIABLE, ClientBehaviour, ClientStats, DeviceClient, build_clients
from vigil.devices.clock import SimClock
from vigil.devices.profiles import CONDITIONS, DEVICE_KINDS, Deterioration, PatientProfile, mixed_ward
from vigil.devices.readings import DeviceBatch, DeviceKey
from vigil.devices.runner import RunProgress, run_simulation
from vigil.devices.transports import (
    DeliveryFailed,
    DeliveryRejected,
    HttpTransport,
    InProcessTransport,
    MqttTransport,
    Transport,
    transport_for_url,
)
from vigil.devices.ward import WardSimulator

__all__ = [
    "CONDITIONS",
    "DEVICE_KINDS",
    "RELIABLE",
    "ClientBehaviour",
    "ClientStats",
    "DeliveryFailed",
    "DeliveryRejected",
    "Deterioration",
    "DeviceBatch",
    "DeviceClient",
    "DeviceKey",
    "HttpTransport",
    "InProcessTransport",
    "MqttTransport",
    "PatientProfile",
    "RunProgress",
    "SimClock",
    "Transport",
    "WardSimulator",
    "build_clients",
    "mixed_ward",
    "run_simulation",
    "transport_for_url",
]
