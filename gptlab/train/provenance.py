"""What produced a run: gptlab, git and torch versions, the device and the arithmetic `auto` chose there."""
from __future__ import annotations

import socket
import subprocess
from typing import Any

import torch

from gptlab.train.device import Runtime, device_label
from gptlab.version import __version__


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


def provenance(runtime: Runtime) -> dict[str, Any]:
    """config.yaml's `provenance:`; `dtype` and `attention` are what the run computed with (the config may
    say auto)."""
    return {"gptlab_version": __version__, "git_commit": git_commit(),
            "torch_version": str(torch.__version__), "device": device_label(runtime.device),
            "dtype": str(runtime.dtype).removeprefix("torch."), "attention": runtime.attn_backend,
            "host": socket.gethostname()}
