"""Experiment specs expanded into runs and executed as crash-isolated `gptlab train` processes."""
