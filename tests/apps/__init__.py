"""Unmodified framework applications that the framework smoke tests run through aiowsgi."""
