"""Models stage: risk prediction on hourly vitals and labs."""
