"""The five services as processes for the end-to-end tests: `casework.devstack`, which the
benchmarks use too."""

from casework.devstack import Stack, running_stack

__all__ = ["Stack", "running_stack"]
