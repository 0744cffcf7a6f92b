"""Dagster wiring: assets, checks, sensors and resources. No algorithms live here."""
