"""Serving Harness: load testing, chaos and capacity planning for ML model serving."""

__version__ = "0.1.0"
