"""Migrations of the benchmark site's ``Item`` table."""
