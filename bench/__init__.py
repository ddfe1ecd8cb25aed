"""Benchmark harness for aiowsgi (see bench/README.md)."""
