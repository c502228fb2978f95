"""What produced a run: gptlab, git and torch versions, and the device."""
from __future__ import annotations

import socket
import subprocess
from typing import Any

import torch

import gptlab


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str) -> dict[str, Any]:
    return {"gptlab_version": gptlab.__version__, "git_commit": git_commit(),
            "torch_version": str(torch.__version__), "device": device, "host": socket.gethostname()}
