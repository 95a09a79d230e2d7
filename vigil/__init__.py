"""Vigil: remote patient monitoring from wearable to clinician's screen."""

__version__ = "0.1.0"
