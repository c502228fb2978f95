"""The `gptlab` command line (the typer app is in app.py).

This runs before any command imports torch, and so before OpenMP starts. Unless the user has chosen a
wait policy, OpenMP threads waiting at a barrier now sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE).
On a CPU shared with other processes, a spinning thread burns the core that its partner thread needs.
With 2 torch threads on a loaded 2-core machine, a step took 15 to 30 times the wall time with spinning
(benchmarks/cpu_speed.md). The policy does not change the numerics.
"""
import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
