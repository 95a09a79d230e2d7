"""Web stage: the clinician dashboard served by the API process."""
