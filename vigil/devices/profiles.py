"""Simulated patients: who they are, what they have, which devices they wear, and the usual ward mix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from vigil.devices.seeding import rng_for, seed_for

CONDITIONS = ("healthy", "hypertensive", "diabetic", "post_operative", "deteriorating")
DEVICE_KINDS = ("wearable", "bp_cuff", "cgm")
USUAL_DEVICES = {
    "healthy": ("wearable",),
    "hypertensive": ("wearable", "bp_cuff"),
    "diabetic": ("wearable", "cgm"),
    "post_operative": ("wearable", "bp_cuff"),
    "deteriorating": ("wearable", "bp_cuff"),
}
VIRTUAL_PATIENTS = tuple(
    f"{group}#{number:03d}" for group in ("adult", "adolescent", "child") for number in range(1, 11)
)

DEFAULT_ONSET = timedelta(hours=4)
DEFAULT_RAMP = timedelta(minutes=75)

# Twelve beds: three hypertensive, three CGM users, two post-operative, four healthy; the fourth bed
# of the first twelve is the one patient who deteriorates.
WARD_PATTERN = (
    "hypertensive",
    "diabetic",
    "post_operative",
    "healthy",
    "hypertensive",
    "healthy",
    "diabetic",
    "post_operative",
    "hypertensive",
    "healthy",
    "diabetic",
    "healthy",
)
DETERIORATING_BED = 3

FIRST_NAMES = {
    "female": ("Amara", "Beatriz", "Chloe", "Dana", "Elif", "Farah", "Greta", "Hana", "Ines", "Julia", "Kaya", "Lena"),
    "male": ("Aaron", "Bruno", "Carlos", "David", "Emil", "Felix", "Gabriel", "Hugo", "Ivan", "Jonas", "Kenji", "Luca"),
}
FAMILY_NAMES = (
    "Adeyemi",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Rossi",
    "Sato",
    "Tanaka",
    "Weber",
)


@dataclass(frozen=True)
class Deterioration:
    """A sepsis-like course that starts `onset` after the simulator start and is fully developed after `ramp`."""

    onset: timedelta = DEFAULT_ONSET
    ramp: timedelta = DEFAULT_RAMP

    def severity(self, elapsed: timedelta) -> float:
        """0 before the onset, rising linearly to 1 at the end of the ramp."""
        return min(max((elapsed - self.onset) / self.ramp, 0.0), 1.0)


@dataclass(frozen=True)
class PatientProfile:
    """One simulated patient. Devices default to the condition's usual ones; a "deteriorating" patient gets
    the default course; a CGM user gets a UVA/Padova virtual patient chosen by the seed."""

    key: str
    name: str
    condition: str
    seed: int
    devices: tuple[str, ...] = ()
    deterioration: Deterioration | None = None
    virtual_patient: str | None = None
    sex: str | None = None
    birth_date: date | None = None

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition: {self.condition!r} is not one of {', '.join(CONDITIONS)}")
        unknown = sorted(set(self.devices) - set(DEVICE_KINDS))
        if unknown:
            raise ValueError(f"devices: unknown kind(s) {', '.join(unknown)}; known: {', '.join(DEVICE_KINDS)}")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("devices: one device of each kind per patient")
        if not self.devices:
            object.__setattr__(self, "devices", USUAL_DEVICES[self.condition])
        if self.deterioration is None and self.condition == "deteriorating":
            object.__setattr__(self, "deterioration", Deterioration())
        if self.virtual_patient is None and "cgm" in self.devices:
            object.__setattr__(self, "virtual_patient", VIRTUAL_PATIENTS[self.seed % len(VIRTUAL_PATIENTS)])
        if self.virtual_patient is not None and self.virtual_patient not in VIRTUAL_PATIENTS:
            raise ValueError(f"virtual_patient: {self.virtual_patient!r} is not a simglucose patient")


def ward_conditions(n: int) -> list[str]:
    """The conditions of an n-bed ward: the fixed pattern, with exactly one deteriorating patient from 4 beds."""
    conditions = [WARD_PATTERN[bed % len(WARD_PATTERN)] for bed in range(n)]
    if n > DETERIORATING_BED:
        conditions[DETERIORATING_BED] = "deteriorating"
    return conditions


def mixed_ward(n: int, seed: int = 0, onset: timedelta = DEFAULT_ONSET) -> list[PatientProfile]:
    """n patient profiles keyed p01, p02, ... with the ward mix, seeded names, ages and virtual patients.
    The deteriorating patient's course starts `onset` after the simulator start."""
    if n < 1:
        raise ValueError("a ward needs at least one patient")
    rng = rng_for(seed, "ward")
    virtual_patients = iter(rng.permutation(VIRTUAL_PATIENTS[:20]).tolist() * (n // 20 + 1))  # adults and adolescents
    family_names = rng.permutation(FAMILY_NAMES).tolist()
    profiles = []
    for bed, condition in enumerate(ward_conditions(n)):
        sex = str(rng.choice(("female", "male")))
        first_name = str(rng.choice(FIRST_NAMES[sex]))
        profiles.append(
            PatientProfile(
                key=f"p{bed + 1:02d}",
                name=f"{first_name} {family_names[bed % len(family_names)]}",
                condition=condition,
                seed=seed_for(seed, "patient", bed),
                deterioration=Deterioration(onset=onset) if condition == "deteriorating" else None,
                virtual_patient=next(virtual_patients) if condition == "diabetic" else None,
                sex=sex,
                birth_date=date(int(rng.integers(1940, 2004)), int(rng.integers(1, 13)), int(rng.integers(1, 29))),
            )
        )
    return profiles
