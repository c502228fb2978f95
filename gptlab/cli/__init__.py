"""The `gptlab` command line (the typer app is in app.py).

OpenMP's wait policy is left to OpenMP (or to the user's OMP_WAIT_POLICY): its default spins briefly at a
barrier, then sleeps. Forcing PASSIVE (sleep at once) made a step of nanoGPT's CPU recipe 2.3x slower on
an idle 2-core machine, because a sleeping thread wakes late for each of a step's many small parallel ops
(benchmarks/cpu_speed.md). The job pool gives each concurrent run its share of the cores (unless the user set
OMP_NUM_THREADS), so spinning threads of one run do not wait for a core held by another.
"""
