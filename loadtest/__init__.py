"""Locust scenarios, day-shaped traffic, threshold checks and reports (load-testing issue)."""
