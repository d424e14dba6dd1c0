"""Chaos game days: Chaos Toolkit experiments, their actions and probes, and the fault proxy."""
