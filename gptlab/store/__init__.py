"""The run store (runs/<experiment>/<run>/): one torch-free owner of its format.

`layout` names the files, the statuses and the summary fields; `files` reads (damage -> StoreError, one
line) and writes (atomic; disk failures -> StoreWriteError); `run` is one run directory with its lock.
"""
from gptlab.store.files import (MetricsRead, StoreError, StoreWriteError, io_failure, read_json_object, read_metrics,
                                read_summary, read_yaml_mapping, signal_text, writing)
from gptlab.store.layout import ENDED, STATUS_ORDER, SUMMARY_FIELDS, UNSUCCESSFUL, Status, summary_record
from gptlab.store.run import RunLocked, RunStore, experiment_runs

__all__ = ["ENDED", "STATUS_ORDER", "SUMMARY_FIELDS", "UNSUCCESSFUL", "MetricsRead", "RunLocked", "RunStore", "Status", "StoreError",
           "StoreWriteError", "experiment_runs", "read_json_object", "read_metrics", "read_summary",
           "read_yaml_mapping", "signal_text", "io_failure", "summary_record", "writing"]
