"""One job pool for `gptlab run` and `gptlab sweep`: device slots, subprocesses, logs, exit codes, the view."""
from gptlab.jobs.outcome import last_line, settle
from gptlab.jobs.pool import JobPool, wait_or_kill

__all__ = ["JobPool", "last_line", "settle", "wait_or_kill"]
