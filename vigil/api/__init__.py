"""API stage: the FastAPI app for devices and people."""
