"""One member of a pack: everything an unpacked run owns, in the run directory it would have unpacked.

Its lock, config.yaml, metrics.jsonl, summary.json, checkpoint.pt (the unpacked format: an unpacked
`gptlab train` resumes it, `gptlab generate` reads it), train.log, progress lines and W&B run.
The stacked weights and optimizer state live in the pack; a member converts its slice on checkpoint.
"""
from __future__ import annotations

import json
import math
import time
import traceback
from typing import IO, Any

import torch

from gptlab.config import RunConfig
from gptlab.model import build_model
from gptlab.store import RunStore, StoreError, summary_record
from gptlab.store.layout import ELSEWHERE
from gptlab.train.checkpoint import load_checkpoint, save_checkpoint
from gptlab.train.optim import build_optimizer
from gptlab.train.progress import ProgressPrinter
from gptlab.train.step import BatchSampler
from gptlab.train.runstart import Start, decide_start
from gptlab.train.streams import run_streams
from gptlab.train.trainer import RunMeta, run_dir_for
from gptlab.train.tracking import Tracker


class Member:
    def __init__(self, cfg: RunConfig, meta: RunMeta, runs_root, fresh: bool) -> None:  # noqa: ANN001
        self.cfg, self.meta, self.fresh = cfg, meta, fresh
        self.store = RunStore(run_dir_for(runs_root, meta))
        self.lock: IO[str] | None = None
        self.status = "pending"
        self.step, self.best, self.final, self.wall_prev = 0, math.inf, None, 0.0
        self.train_tokens, self.train_time = 0, 0.0
        self.pack_size = 1  # set by the pack that trains it
        self.result: dict[str, Any] | None = None  # the summary once this member has ended

    # ---- start: the unpacked run's checks, under its lock ----
    def open(self, record: dict[str, Any], expect: str | None = None) -> dict[str, Any] | None:
        """Lock it and decide its start as the trainer does (runstart); returns the stored summary when
        there is nothing to do (finished, or ended in another process since planning)."""
        self.lock = self.store.lock()
        start, previous = decide_start(self.store, self.cfg, fresh=self.fresh, expect=expect)
        self.start = start  # train.log's start line names it
        if start in (Start.done, Start.elsewhere):
            if start == Start.elsewhere:
                print(f"{self.meta.name}: {previous['status']} {ELSEWHERE}")
            return previous
        # a resumed member keeps the arithmetic it started with (the pack loop reads it from here)
        try:
            self.stored = self.store.config() if start == Start.resume else None
        except StoreError:  # damaged: the checkpoint decides the resume; the arithmetic is this machine's `auto`
            self.stored = None
        self.record = record
        self.store.write_config(record)
        return None

    def keep_provenance(self, prov: dict[str, Any]) -> None:
        """Rewrite config.yaml's provenance once the pack's runtime is settled."""
        self.record = {**self.record, "provenance": prov}
        self.store.write_config(self.record)

    def build(self, runtime, train_data: torch.Tensor) -> None:  # noqa: ANN001
        """This member's model exactly as the trainer builds it (its seed, then build_model), its AdamW
        (the optimizer's parameter order and state_dict format) and its batch sampler."""
        t = self.cfg.train
        self.device = runtime.device
        streams = run_streams(t)
        torch.manual_seed(streams.init)
        self.model = build_model(self.cfg.model).to(runtime.device)
        self.opt = build_optimizer(self.model, t)
        self.sampler = BatchSampler(train_data, t.batch_size, self.cfg.model.block_size, streams.data,
                                    runtime.device_sampling)
        self.n_params = self.model.num_params()
        names = {id(p): n for n, p in self.model.named_parameters()}
        # every parameter name (tied ones too) -> the name its tensor is stacked under
        self.first_name = {n: names[id(p)] for n, p in self.model.named_parameters(remove_duplicate=False)}
        self.opt_order = [names[id(p)] for group in self.opt.param_groups for p in group["params"]]
        self.resumed = self.store.checkpoint_path.exists()

    def restore(self, device: torch.device) -> dict[str, Any]:
        """Load the checkpoint into this member's own model and AdamW; returns it (RNG states, step)."""
        state = load_checkpoint(self.store.checkpoint_path, device)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sampler.generator.set_state(state["batch_rng"].cpu())
        self.step, self.best, self.wall_prev = state["step"], state["best_val_loss"], state["wall_s"]
        self.final = state.get("final_val_loss")
        self.train_tokens, self.train_time = state.get("train_tokens", 0), state.get("train_time", 0.0)
        self.store.truncate_metrics(self.step)
        return state

    def start_logging(self, t_start: float) -> None:
        self.t_start = t_start
        self.log_file = open(self.store.log_path, "a", encoding="utf-8", buffering=1)
        self.progress = ProgressPrinter(self.meta.name, self.cfg.train.max_steps, log_file=self.log_file)
        self.tracker = Tracker(self.cfg.log.wandb, concurrent=True)
        tags = self.cfg.model.tags()  # as the trainer: every axis and the chosen plugins' options
        self.tracker.start(project=self.cfg.log.project, entity=self.cfg.log.entity,
                           experiment=self.meta.experiment, name=self.meta.name, variant=self.meta.job_type,
                           label=self.meta.label(), tags=tags, config=self.record, run_dir=self.store.dir,
                           resume=self.resumed, best_so_far=self.best if math.isfinite(self.best) else None,
                           stored=self.store.metrics() if self.resumed else [])
        self.status = "running"
        self.write_summary("running")
        self.metrics = self.store.open_metrics()

    # ---- during the run ----
    def emit(self, row: dict[str, Any], eta_s: float | None = None) -> None:
        if "val/loss" in row:
            self.final = row["val/loss"]
            if row["val/loss"] < self.best:
                self.best = row["val/loss"]
        self.metrics.write(json.dumps(row) + "\n")
        self.tracker.log(row)
        self.progress.update(row, eta_s)

    def checkpoint(self, model_state: dict[str, torch.Tensor], opt_state: dict[int, dict], lr: float,
                   batch_rng: torch.Tensor, torch_rng: torch.Tensor, cuda_rng: torch.Tensor | None,
                   dropout_rng: torch.Tensor, chars: list[str]) -> None:
        """The unpacked trainer's checkpoint, from this member's slice of the pack."""
        self.model.load_state_dict(model_state)
        optimizer = self.opt.state_dict()
        optimizer["state"] = opt_state
        for group in optimizer["param_groups"]:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # as TrainStep sets it
        save_checkpoint(self.store.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": optimizer,
            "step": self.step, "best_val_loss": self.best, "final_val_loss": self.final,
            "wall_s": self.wall(), "train_tokens": self.train_tokens, "train_time": self.train_time,
            "batch_rng": batch_rng, "torch_rng": torch_rng, "cuda_rng": cuda_rng, "dropout_rng": dropout_rng,
            "config": self.cfg.to_dict(), "chars": chars})

    def wall(self) -> float:
        return self.wall_prev + (time.perf_counter() - self.t_start)

    def write_summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        summary = summary_record(status, best=self.best, final=self.final, steps=self.step, wall_s=self.wall(),
                                 train_tokens=self.train_tokens, train_time=self.train_time,
                                 n_params=self.n_params, device=str(self.device), error=error,
                                 packed=self.pack_size)
        self.store.write_summary(summary)
        return summary

    # ---- the end ----
    def end(self, status: str, error: str | None = None, trace: bool = False,
            message: str | None = None) -> dict[str, Any]:
        """Record the final status (`error` goes into summary.json, `message` only to the logs), close
        W&B, the files and the lock. Idempotent."""
        if self.result is not None:
            return self.result
        self.status = status
        if error or message:
            self.progress.message(f"{self.meta.name} {message or f'{status}: {error}'} (log: {self.store.log_path})")
            if trace:
                self.log_file.write(traceback.format_exc())
        self.result = self.write_summary(status, error)
        self.tracker.finish(self.result)
        self.metrics.close()
        self.log_file.close()
        self.release()
        return self.result

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None
