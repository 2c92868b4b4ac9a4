"""Benchmark scripts, real-data loaders and peer forecasters (not part of the installed packages)."""
