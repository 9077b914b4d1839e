"""Tracking: the store and run records."""
