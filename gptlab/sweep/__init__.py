"""W&B sweep files run without a server: W&B's open-source engine proposes, gptlab train subprocesses run.

`config` checks a sweep file, `command` builds a run's argv as `wandb agent` would, `engine` drives the
runs and feeds their metrics back, `agent` places agent-started runs in the local store.
"""
