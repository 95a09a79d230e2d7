"""API stage: the FastAPI routes for devices and people."""
