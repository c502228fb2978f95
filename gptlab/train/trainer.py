"""One training run end to end: validated config in, run directory out (CONTRACT's run store).

The hot loop does no host sync except at log steps: the loss and a non-finite flag stay on the
device between them.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from gptlab.config import RunConfig
from gptlab.dataset import eval_windows, load_data
from gptlab.model import build_model
from gptlab.overrides import label_from_name
from gptlab.train.checkpoint import load_checkpoint, save_checkpoint, unwrap
from gptlab.train.device import kept_runtime, resolve_runtime
from gptlab.train.muon import check_optimizer
from gptlab.train.optim import lr_at
from gptlab.train.progress import ProgressPrinter
from gptlab.train.runstart import Start, decide_start, failure_text, log_start, record_failure, stop_signal_text
from gptlab.train.provenance import provenance
from gptlab.train.step import TrainStep
from gptlab.train.streams import run_streams
from gptlab.store import RunStore, Status, StoreError, StoreWriteError, summary_record
from gptlab.store.layout import ELSEWHERE
from gptlab.train.tracking import Tracker, under_slurm


# seconds in which a repeated stop signal is the same stop, not "stop at once" (see _catch_stop_signals)
SAME_STOP_S = 2.0
_last_stop = [-1e9]  # time.monotonic() of the last stop signal a run accepted (this process)


def note_stop() -> None:
    """A run accepted a stop signal now (the trainer's and a pack's stop handlers call this)."""
    _last_stop[0] = time.monotonic()


def repeated_stop() -> bool:
    """A stop signal arriving now repeats the one a run accepted within SAME_STOP_S: the same stop, which
    the command's own handler must not turn into a second KeyboardInterrupt on its way out."""
    return time.monotonic() - _last_stop[0] < SAME_STOP_S


@dataclass(frozen=True)
class RunMeta:
    experiment: str = "adhoc"
    name: str = "run"
    variant: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # keys that differ from the study's base
    study: dict[str, Any] = field(default_factory=dict)  # a study's stage (tune|compare), at (tuned|shared), size

    def label(self) -> str:
        return label_from_name(self.name)

    @property
    def job_type(self) -> str | None:
        """W&B job_type: `tune` for a tuning run, else the variant."""
        return "tune" if self.study.get("stage") == "tune" else self.variant

    def record(self, seed: int) -> dict[str, Any]:
        """config.yaml's `run:` section."""
        return {"experiment": self.experiment, "name": self.name, "label": self.label(), "variant": self.variant,
                "seed": seed, "overrides": dict(self.overrides), **self.study}


def run_dir_for(runs_root: Path, meta: RunMeta) -> Path:
    return Path(runs_root) / meta.experiment / meta.name


def run_training(cfg: RunConfig, runs_root: Path, meta: RunMeta, *, fresh: bool = False, expect: str | None = None,
                 on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) one run; returns its summary. Bad input raises UserError before anything is
    written; RunLocked if another process holds the run; a crash is recorded, not raised. Whether the run
    starts fresh, resumes or is left alone is decided under its lock (see runstart; `expect` is the
    fingerprint a planner saw)."""
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    check_optimizer(cfg)  # a model Muon cannot take: one line, exit 2, nothing written
    runtime = resolve_runtime(cfg.train)
    store = RunStore(run_dir_for(runs_root, meta))
    lock = store.lock()
    try:
        start, previous = decide_start(store, cfg, fresh=fresh, expect=expect)
        if start == Start.elsewhere:
            print(f"{meta.name}: {previous['status']} {ELSEWHERE}")
            return previous
        if start == Start.done:
            return previous
        if start == Start.resume:  # a resumed run keeps the arithmetic it started with
            runtime = kept_runtime(runtime, cfg.train, _stored_config(store))
        record = {**cfg.to_dict(),
                  "run": meta.record(cfg.train.seed),
                  "provenance": provenance(runtime)}
        try:
            store.write_config(record)
            loop = _Loop(cfg, runtime, data, store, meta, record, on_log)
        except Exception as exc:  # noqa: BLE001 - a full disk, an unreadable checkpoint: recorded, not a traceback
            log_start(store, start, None)
            return record_failure(store, failure_text(exc))
        log_start(store, start, loop.step)
        return loop.run()
    finally:
        lock.close()


def _stored_config(store: RunStore) -> dict[str, Any] | None:
    try:
        return store.config()
    except StoreError:  # damaged: the checkpoint decides the resume; the arithmetic is this machine's `auto`
        return None


class _Loop:
    def __init__(self, cfg: RunConfig, runtime, data, store: RunStore, meta: RunMeta,
                 record: dict[str, Any], on_log) -> None:
        self.cfg, self.rt, self.data, self.store, self.meta, self.on_log = cfg, runtime, data, store, meta, on_log
        self.record = record
        t = cfg.train
        torch.manual_seed(run_streams(t).init)  # the init stream: every weight's is keyed by it (model/init.py)
        self.model = build_model(cfg.model).to(runtime.device)
        self.train_data = data.train.to(runtime.device)
        self.val_data = data.val.to(runtime.device)
        self.step_fn = TrainStep(cfg, self.model, runtime, self.train_data)
        self.opt, self.gen, self.diag = self.step_fn.opt, self.step_fn.sampler.generator, self.step_fn.diag
        self.step, self.best, self.final, self.wall_prev = 0, math.inf, None, 0.0
        self.train_tokens, self.train_time = 0, 0.0
        self.n_params = unwrap(self.model).num_params()
        self.tracker = Tracker(cfg.log.wandb)
        self.resumed = store.checkpoint_path.exists()
        if self.resumed:
            self._restore()
        self.eval_starts = eval_windows(data.val, cfg.model.block_size, t.eval_steps * t.batch_size)
        self.diverge_at = max(100.0, 10 * math.log(cfg.model.vocab_size))

    # ---- state ----
    def _restore(self) -> None:
        state = load_checkpoint(self.store.checkpoint_path, self.rt.device)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["batch_rng"].cpu())  # generator state is a CPU ByteTensor on any device
        if state.get("dropout_rng") is not None:  # a checkpoint from before 0.4.0 has none: fresh masks
            self.step_fn.dropout_gen.set_state(state["dropout_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and self.rt.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.rt.device)  # dropout masks continue too
        self.step, self.best, self.wall_prev = state["step"], state["best_val_loss"], state["wall_s"]
        self.final = state.get("final_val_loss")
        self.train_tokens, self.train_time = state.get("train_tokens", 0), state.get("train_time", 0.0)
        self.store.truncate_metrics(self.step)

    def _checkpoint(self) -> None:
        save_checkpoint(self.store.checkpoint_path, {
            "model": unwrap(self.model).state_dict(), "optimizer": self.opt.state_dict(),
            "step": self.step, "best_val_loss": self.best, "final_val_loss": self.final,
            "wall_s": self._wall(), "train_tokens": self.train_tokens, "train_time": self.train_time,
            "batch_rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "dropout_rng": self.step_fn.dropout_gen.get_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.rt.device) if self.rt.device.type == "cuda" else None,
            "config": self.cfg.to_dict(), "chars": list(self.data.tokenizer.chars)})

    def _wall(self) -> float:
        return self.wall_prev + (time.perf_counter() - self.t_start)

    def _summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        summary = summary_record(status, best=self.best, final=self.final, steps=self.step, wall_s=self._wall(),
                                 train_tokens=self.train_tokens, train_time=self.train_time,
                                 n_params=self.n_params, device=str(self.rt.device), error=error)
        try:
            self.store.write_summary(summary)
        except StoreWriteError as exc:  # the verdict still reaches the caller and the exit code
            self.progress.message(f"{self.meta.name}: could not record status {status}: {exc}")
        return summary

    # ---- loop ----
    def run(self) -> dict[str, Any]:
        self.t_start = time.perf_counter()
        t, meta = self.cfg.train, self.meta
        log_file = open(self.store.log_path, "a", encoding="utf-8", buffering=1)
        self.progress = ProgressPrinter(meta.name, t.max_steps, log_file=log_file)
        tags = self.cfg.model.tags()  # every axis (gptlab/axes.py) and the chosen plugins' options
        self.tracker.start(project=self.cfg.log.project, entity=self.cfg.log.entity,
                           experiment=meta.experiment, name=meta.name, variant=meta.job_type,
                           label=meta.label(), tags=tags,
                           config=self.record, run_dir=self.store.dir, resume=self.resumed,
                           best_so_far=self.best if math.isfinite(self.best) else None,
                           stored=self.store.metrics() if self.resumed else [])
        self._summary(Status.running)
        status, error = Status.running, None
        previous_handlers = self._catch_stop_signals()
        try:
            with self.store.open_metrics() as self.metrics:
                status = self._train()
        except KeyboardInterrupt:
            status = Status.interrupted
            if self._stop_signal == signal.SIGTERM and under_slurm():  # Slurm preempts; a requeue resumes
                self.tracker.mark_preempting()
            if self._stop_signal is not None:
                error = stop_signal_text(self._stop_signal, self.step)
            try:
                if not self._updating:  # a half-applied update must not be saved; the last checkpoint stands
                    self._checkpoint()
            except StoreWriteError as exc:
                status, error = Status.failed, str(exc)
                self.progress.message(f"{meta.name} failed: {error}")
            raise
        except Exception as exc:  # noqa: BLE001 - a crash is recorded in the run, never lost
            status, error = Status.failed, failure_text(exc)
            log_file.write(traceback.format_exc())
            self.progress.message(f"{meta.name} failed: {error} (log: {self.store.log_path})")
        finally:
            try:  # the final status is written under the run's own stop handler: a stop signal sent again
                summary = self._summary(status, error)  # (TERM, CONT, TERM) must not cut this write short
                self.tracker.finish(summary)
                self.progress.close()
                log_file.close()
            finally:
                for signum, handler in previous_handlers.items():
                    signal.signal(signum, handler)
        return summary

    def _catch_stop_signals(self) -> dict:
        """Ctrl-C / SIGTERM stop the run at the next step boundary, so the checkpoint written on the way
        out is exactly the state after a whole step (a resumed run then matches an uninterrupted one).
        A second signal stops at once, keeping the last whole-step checkpoint; one that comes within
        SAME_STOP_S of the first is the same stop sent again (Slurm's TERM, CONT, TERM; a job wrapper
        forwarding what the process also got) and must not drop the checkpoint being written."""
        self._stop_requested, self._in_step, self._stop_signal, stopped_at = False, False, None, [0.0]
        self._updating = False  # inside step_fn: the update may be half applied
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):  # noqa: ANN001
            if self._stop_signal is not None and time.monotonic() - stopped_at[0] < SAME_STOP_S:
                return
            repeated, self._stop_signal, stopped_at[0] = self._stop_signal is not None, signum, time.monotonic()
            note_stop()
            if repeated or not self._in_step:
                raise KeyboardInterrupt
            self._stop_requested = True

        return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _train(self) -> str:
        t = self.cfg.train
        # `_in_step` spans a step and its row, eval and checkpoint: a stop that lands inside waits for the loop's
        # top, so the checkpoint written on the way out never lies past a row not yet written
        self._in_step = True
        if self.step == 0 and not self.resumed:
            self._emit({"step": 0, "val/loss": self._eval()})
        tokens_per_step = t.batch_size * self.cfg.model.block_size * t.grad_accum
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.rt.device)
        tick, tick_step = time.perf_counter(), self.step
        while self.step < t.max_steps:
            self._in_step = False
            if self._stop_requested:
                raise KeyboardInterrupt
            lr = lr_at(self.step, t)
            measure = self.diag.active(self.step + 1)
            self._in_step = True
            self._updating = True
            loss = self.step_fn(lr, measure)  # 0-dim tensor, still on the device
            nonfinite |= ~torch.isfinite(loss)
            self.step += 1
            self._updating = False
            at_eval = self.step % t.eval_interval == 0 or self.step == t.max_steps
            if not (at_eval or self.step % self.cfg.log.log_interval == 0):
                continue
            train_loss = loss.item()  # the one host sync per log interval
            now = time.perf_counter()
            elapsed, steps = now - tick, self.step - tick_step
            self.train_tokens += steps * tokens_per_step
            self.train_time += elapsed
            row = {"step": self.step, "train/loss": train_loss, "lr": lr,
                   "tokens_per_s": round(steps * tokens_per_step / elapsed, 1) if elapsed > 0 else None}
            if self.step_fn.last_z_loss is not None:  # z_loss > 0: its weighted term, apart from train/loss
                row["train/z_loss"] = self.step_fn.last_z_loss.item()
            if bool(nonfinite) or not train_loss < self.diverge_at:
                self._emit(row)
                self.progress.message(f"{self.meta.name} diverged at step {self.step}: train loss {train_loss}")
                return "diverged"
            if measure:
                row.update(self.diag.collect(tokens_per_s=row["tokens_per_s"]))
            if at_eval:
                row["val/loss"] = self._eval()
            self._emit(row, eta_s=(t.max_steps - self.step) * elapsed / max(steps, 1))
            if at_eval:
                if not math.isfinite(row["val/loss"]):
                    return "diverged"
                self._checkpoint()
            tick, tick_step = time.perf_counter(), self.step
        return "finished"

    def _eval(self) -> float:
        loss = self.step_fn.evaluate(self.val_data, self.eval_starts)  # the compiled eval graph, if compiling
        self.final = loss
        if loss < self.best:
            self.best = loss
        return loss

    def _emit(self, row: dict[str, Any], eta_s: float | None = None) -> None:
        self.metrics.write(json.dumps(row) + "\n")
        self.tracker.log(row)
        self.progress.update(row, eta_s)
        if self.on_log is not None:
            self.on_log(row)
