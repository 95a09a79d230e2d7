"""Web stage: the clinician dashboard, and the application that serves it together with the API."""
