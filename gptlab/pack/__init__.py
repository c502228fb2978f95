"""Several runs trained as one stacked model in one process (`gptlab run --pack seeds|auto`).

plan: which runs share a pack; stacked: the stacked model; optim: per-member AdamW and clipping;
member: one member's run directory, checkpoint and logs; loop: the packed training loop.
"""
from gptlab.pack.plan import MODES, PACKABLE_KEYS, PackMember, group, pack_command

__all__ = ["MODES", "PACKABLE_KEYS", "PackMember", "group", "pack_command", "run_pack"]


def run_pack(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - torch imported only when a pack runs
    from gptlab.pack.loop import run_pack as run

    return run(*args, **kwargs)
