"""Train a pack: several runs of one architecture as one stacked model in one process.

Each step draws every member's own batch (its own sampler, seeded as unpacked), runs one forward and
backward over the stacked model (each member's dropout masks from its own stream), clips each member's
gradients on its own and applies each member's AdamW with its own learning-rate schedule. On a CPU a
member's numbers are its unpacked run's, bit for bit, whatever its pack-mates (the stacked matmuls give
each member the unpacked kernel's bits; norms, losses, clipping and AdamW are computed member by member
with the unpacked arithmetic: tests/test_pack_independence.py). Log steps, evals, checkpoints and divergence checks happen
where the unpacked trainer has them; a member that diverges is recorded and masked, the others go on.
On log steps the trainer's diagnostics (gptlab/train/diag) measure every member on its own slice of the
stack, so a member logs the `diag/` keys its unpacked run logs, at the same steps.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from gptlab.config import RunConfig
from gptlab.dataset import eval_windows, load_data, windows_to_batch
from gptlab.pack.member import Member
from gptlab.pack.optim import StackedAdamW, clip_per_member
from gptlab.pack.stacked import stack_models, use_member_streams
from gptlab.store import RunLocked, Status
from gptlab.store.layout import LOCKED
from gptlab.train.device import kept_runtime, resolve_runtime
from gptlab.train.diag import build_diagnostics
from gptlab.train.evaluate import lm_loss, z_loss
from gptlab.train.optim import hidden_lr_scale, is_mup, lr_at, lr_factors
from gptlab.train.provenance import provenance
from gptlab.train.runstart import failure_text, log_start, record_failure
from gptlab.train.streams import dropout_generator
from gptlab.train.trainer import SAME_STOP_S, RunMeta, note_stop


def run_pack(cfgs: list[RunConfig], metas: list[RunMeta], runs_root: Path, fresh: list[bool] | None = None,
             expect: list[str | None] | None = None) -> list[dict[str, Any]]:
    """Train (or resume) every member; returns their summaries in order. Bad input raises UserError
    before anything is written; a crash is recorded in every member still running."""
    fresh = fresh or [False] * len(cfgs)
    expect = expect or [None] * len(cfgs)
    data = load_data(cfgs[0].data, cfgs[0].model.block_size)
    cfgs = [c.replace(vocab_size=data.tokenizer.vocab_size) for c in cfgs]
    runtime = resolve_runtime(cfgs[0].train)
    members = [Member(c, m, runs_root, f) for c, m, f in zip(cfgs, metas, fresh)]
    summaries: dict[int, dict[str, Any]] = {}
    prov = provenance(runtime)
    try:
        for i, member in enumerate(members):
            record = {**member.cfg.to_dict(),
                      "run": member.meta.record(member.cfg.train.seed),
                      "provenance": prov}
            try:
                previous = member.open(record, expect[i])
            except RunLocked as locked:
                print(f"skipped: {locked} {LOCKED}", file=sys.stderr)
                summaries[i] = {"status": Status.running, "elsewhere": True, "error": "running in another process"}
                continue
            if previous is not None:
                summaries[i] = previous
                member.release()
        todo = [m for i, m in enumerate(members) if i not in summaries]
        stored = [m.stored for m in todo if m.stored is not None]
        if stored:  # resumed members keep the arithmetic they started with (they started as one pack)
            runtime = kept_runtime(runtime, cfgs[0].train, stored[0])
            kept = provenance(runtime)
            if kept != prov:
                for member in todo:
                    member.keep_provenance(kept)
        if todo:
            try:
                pack = _Pack(todo, runtime, data)
            except Exception as exc:  # noqa: BLE001 - e.g. an unreadable checkpoint: recorded, not a traceback
                for member in todo:
                    log_start(member.store, member.start, None)
                    summaries[members.index(member)] = record_failure(member.store, failure_text(exc))
                return [summaries[i] for i in range(len(members))]
            for member in todo:  # train.log's start line, as the unpacked trainer writes it (with this pid)
                log_start(member.store, member.start, pack.step)
            for member, summary in zip(todo, pack.run()):
                summaries[members.index(member)] = summary
    finally:
        for member in members:
            member.release()
    return [summaries[i] for i in range(len(members))]


class _Pack:
    def __init__(self, members: list[Member], runtime, data) -> None:  # noqa: ANN001
        self.members, self.rt, self.data = members, runtime, data
        for m in members:  # summary.json says a member's tokens/s was measured in a pack of this many
            m.pack_size = len(members)
        self.cfg = members[0].cfg  # the shapes and cadences every member shares
        t, M = self.cfg.train, len(members)
        shapes = {repr(m.cfg.replace(dropout=0.0).model) for m in members}
        if len(shapes) > 1:
            raise ValueError("a pack's members must share one architecture (only dropout may differ)")
        self.train_data = data.train.to(runtime.device)
        self.val_data = data.val.to(runtime.device)
        for member in members:
            member.build(runtime, self.train_data)
        states = [m.restore(runtime.device) if m.resumed else None for m in members]
        steps = {m.step for m in members}
        if len(steps) > 1:
            raise RuntimeError(f"members resume from different steps {sorted(steps)}; the planner packs "
                               "only runs at the same step")
        self.step = steps.pop()
        self.resumed = any(m.resumed for m in members)
        dropout = [m.cfg.model.dropout for m in members]
        self.model, self.params = stack_models([m.model for m in members], dropout)
        self.model.to(runtime.device).train()
        self.model.set_attention_backend(runtime.attn_backend)
        tt = [m.cfg.train for m in members]
        names = {id(p): name for name, p in self.params.items()}  # a member's own parameter names
        self.diag = build_diagnostics(self.cfg.log.diagnostics, self.model, runtime, self.cfg.log.log_interval,
                                      members=M, names=names)
        scales = [hidden_lr_scale(m.cfg.model) for m in members]  # μP's width factor, else 1 (no scaling)
        hidden = {name for name, f in lr_factors(members[0].model).items() if f != 1.0}
        self.opt = StackedAdamW(self.params, [x.weight_decay for x in tt], [x.beta1 for x in tt],
                                [x.beta2 for x in tt], hidden, scales if any(is_mup(m.cfg.model) for m in members)
                                else None)
        for i, (member, state) in enumerate(zip(members, states)):
            if state is not None:
                self.opt.load_member_state(i, member.opt.state_dict()["state"], member.opt_order)
        # each member's dropout masks from its own stream, continued from its checkpoint when resumed
        self.dropout_gens = [dropout_generator(x, runtime.device) for x in tt]
        for gen, state in zip(self.dropout_gens, states):
            if state is not None and state.get("dropout_rng") is not None:  # none before 0.4.0: fresh masks
                gen.set_state(state["dropout_rng"].cpu())
        use_member_streams(self.model, self.dropout_gens)
        resumed_states = [s for s in states if s is not None]
        torch.manual_seed(tt[0].seed)  # torch's own generator: only a plugin component's randomness uses it
        if resumed_states:
            torch.set_rng_state(resumed_states[0]["torch_rng"].cpu())
            if resumed_states[0].get("cuda_rng") is not None and runtime.device.type == "cuda":
                torch.cuda.set_rng_state(resumed_states[0]["cuda_rng"].cpu(), runtime.device)
        self.clip = [x.grad_clip for x in tt]
        self.clip_order = list(dict(members[0].model.named_parameters()))  # clip_grad_norm_'s order
        self.alive = [True] * M
        self.last_z_loss: torch.Tensor | None = None  # z_loss > 0: each member's last weighted z term (M,)
        self.eval_starts = eval_windows(data.val, self.cfg.model.block_size, t.eval_steps * t.batch_size)
        self.diverge_at = max(100.0, 10 * math.log(self.cfg.model.vocab_size))

    # ---- the step ----
    def _step(self, lrs: list[float], measure: bool = False) -> torch.Tensor:
        """One update of every live member; returns the mean loss (M,). With `measure` (log steps
        only) the diagnostics hook in around it, per member, as around the unpacked TrainStep."""
        t, M = self.cfg.train, len(self.members)
        if measure:
            self.diag.before_forward()
        total = torch.zeros(M, device=self.rt.device)
        z_weight = self.cfg.model.z_loss
        z_total = torch.zeros(M, device=self.rt.device) if z_weight > 0 else None
        for _ in range(t.grad_accum):
            batches = [m.sampler() for m in self.members]
            x = torch.cat([b[0] for b in batches])   # (M*B, T), member-major
            y = torch.cat([b[1] for b in batches])   # (M*B, T)
            with self.rt.autocast:
                logits = self.model(x)               # (M*B, T, V)
            loss = _member_losses(logits, y, M) / t.grad_accum  # (M,)
            if z_total is None:
                loss.sum().backward()                # members share no weights: each gets its own gradient
            else:                                    # z_loss > 0: each member's weighted z term joins its objective
                z = z_weight * _member_z_losses(logits, M) / t.grad_accum  # (M,)
                (loss + z).sum().backward()
                z_total += z.detach()
            total += loss.detach()
        self.last_z_loss = z_total
        if measure:
            self.diag.after_backward()
        clip_per_member(self.params, self.clip_order, self.clip)
        self.opt.step(lrs, self.alive)
        if measure:
            self.diag.after_step()
        self.opt.zero_grad()
        return total

    @torch.no_grad()
    def _eval(self) -> list[float]:
        """Every member's loss on the same fixed windows as unpacked (trainer's evaluate, stacked)."""
        t, M, T = self.cfg.train, len(self.members), self.cfg.model.block_size
        self.model.eval()
        total = torch.zeros(M, device=self.rt.device)
        for i in range(0, len(self.eval_starts), t.batch_size):
            x, y = windows_to_batch(self.val_data, self.eval_starts[i:i + t.batch_size], T)  # (b, T)
            with self.rt.autocast:
                logits = self.model(x.repeat(M, 1))  # every member sees the same windows
            total += _member_losses(logits, y.repeat(M, 1), M) * len(x)
        self.model.train()
        return (total / len(self.eval_starts)).tolist()

    # ---- the loop ----
    def run(self) -> list[dict[str, Any]]:
        t_start = time.perf_counter()
        for member in self.members:
            member.start_logging(t_start)
        handlers = self._catch_stop_signals()
        try:
            self._train()
            self._sync_steps()
            for member in self._live():
                member.end("finished")
        except KeyboardInterrupt:
            self._sync_steps()
            if not self._updating:  # a half-applied update must not be saved; the last checkpoint stands
                self._checkpoint()
            for member in self._live():
                member.end("interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - a crash is recorded in every member, never lost
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._sync_steps()
            for member in self._live():
                member.end("failed", error, trace=True)
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        return [m.result for m in self.members]

    def _sync_steps(self) -> None:
        for member in self._live():
            member.step = self.step

    def _live(self) -> list[Member]:
        return [m for m, alive in zip(self.members, self.alive) if alive]

    def _catch_stop_signals(self) -> dict:
        """As the trainer: the first Ctrl-C / SIGTERM stops at the next step boundary, a second at once,
        unless it comes within SAME_STOP_S of the first (the same stop sent again)."""
        self._stop_requested, self._in_step, stopped_at = False, False, []
        self._updating = False  # inside the step: the update may be half applied
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):  # noqa: ANN001
            if stopped_at and time.monotonic() - stopped_at[-1] < SAME_STOP_S:
                return
            stopped_at.append(time.monotonic())
            note_stop()
            if len(stopped_at) > 1 or not self._in_step:
                raise KeyboardInterrupt
            self._stop_requested = True

        return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _train(self) -> None:
        t, M = self.cfg.train, len(self.members)
        self._in_step = True  # spans a step, its rows, eval and checkpoint: a stop inside waits for the loop's top
        if self.step == 0 and not self.resumed:
            for member, val in zip(self.members, self._eval()):
                member.emit({"step": 0, "val/loss": val})
        tokens_per_step = t.batch_size * self.cfg.model.block_size * t.grad_accum
        nonfinite = torch.zeros(M, dtype=torch.bool, device=self.rt.device)
        tick, tick_step = time.perf_counter(), self.step
        while self.step < t.max_steps and any(self.alive):
            self._in_step = False
            if self._stop_requested:
                raise KeyboardInterrupt
            lrs = [lr_at(self.step, m.cfg.train) for m in self.members]
            measure = self.diag.active(self.step + 1)
            self._in_step = True
            self._updating = True
            loss = self._step(lrs, measure)
            nonfinite |= ~torch.isfinite(loss)
            self.step += 1
            self._updating = False
            at_eval = self.step % t.eval_interval == 0 or self.step == t.max_steps
            if not (at_eval or self.step % self.cfg.log.log_interval == 0):
                continue
            losses, bad = loss.tolist(), nonfinite.tolist()  # the host sync
            zs = self.last_z_loss.tolist() if self.last_z_loss is not None else None
            now = time.perf_counter()
            elapsed, steps = now - tick, self.step - tick_step
            speed = round(steps * tokens_per_step / elapsed, 1) if elapsed > 0 else None
            diags = self.diag.collect_members([speed] * M) if measure else [{}] * M  # one more host copy
            rows = {}
            for i, member in enumerate(self.members):
                if not self.alive[i]:
                    continue
                member.step = self.step
                member.train_tokens += steps * tokens_per_step
                member.train_time += elapsed
                row = {"step": self.step, "train/loss": losses[i], "lr": lrs[i], "tokens_per_s": speed}
                if zs is not None:
                    row["train/z_loss"] = zs[i]
                if bad[i] or not losses[i] < self.diverge_at:
                    member.emit(row)
                    self._diverge(i, f"diverged at step {self.step}: train loss {losses[i]}")
                    continue
                rows[i] = {**row, **diags[i]}
            vals = self._eval() if at_eval and rows else None
            eta = (t.max_steps - self.step) * elapsed / max(steps, 1)
            for i, row in rows.items():
                if vals is not None:
                    row["val/loss"] = vals[i]
                self.members[i].emit(row, eta_s=eta)
                if vals is not None and not math.isfinite(vals[i]):
                    self._diverge(i, f"diverged at step {self.step}: val loss {vals[i]}")
            if at_eval:
                self._checkpoint()
            tick, tick_step = time.perf_counter(), self.step

    def _diverge(self, i: int, why: str) -> None:
        """Record member i diverged and mask it: no more updates, and zero weights so its slice of the
        stacked compute stays finite (NaN/inf would slow every later step)."""
        self.alive[i] = False
        with torch.no_grad():
            for p in self.params.values():
                p[i].zero_()
        self.opt.reset_member(i)
        self.members[i].end("diverged", message=why)

    def _checkpoint(self) -> None:
        self._sync_steps()
        torch_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.rt.device) if self.rt.device.type == "cuda" else None
        chars = list(self.data.tokenizer.chars)
        for i, member in enumerate(self.members):
            if not self.alive[i]:
                continue
            weights = {name: p[i].detach() for name, p in self.params.items()}
            member.checkpoint(_member_state_dict(member, weights), self.opt.member_state(i, member.opt_order),
                              lr_at(self.step - 1, member.cfg.train) if self.step else member.cfg.train.lr,
                              member.sampler.generator.get_state(), torch_rng, cuda_rng,
                              self.dropout_gens[i].get_state(), chars)


def _member_losses(logits: torch.Tensor, targets: torch.Tensor, M: int) -> torch.Tensor:
    """lm_loss of each member on its own rows (the unpacked reduction, so the same bits): (M*B, T, V) -> (M,)"""
    pairs = zip(logits.view(M, -1, *logits.shape[1:]).unbind(0), targets.view(M, -1, *targets.shape[1:]).unbind(0))
    return torch.stack([lm_loss(lg, tg) for lg, tg in pairs])


def _member_z_losses(logits: torch.Tensor, M: int) -> torch.Tensor:
    """z_loss (gptlab/train/evaluate.py) of each member on its own rows: (M*B, T, V) -> (M,)"""
    return torch.stack([z_loss(lg) for lg in logits.view(M, -1, *logits.shape[1:]).unbind(0)])


def _member_state_dict(member: Member, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Member's model state_dict with its slice of the pack's weights (tied names share one tensor)."""
    own = member.model.state_dict()
    return {name: weights[member.first_name[name]] if name in member.first_name else tensor
            for name, tensor in own.items()}  # buffers (none persistent today) kept as built
