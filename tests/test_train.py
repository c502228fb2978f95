"""Training end to end on CPU: real tiny models, real run directories."""
import json
import math

import pytest
import torch
import yaml

from gptlab.config import build_config
from gptlab.train import RunMeta, run_training
from gptlab.train.checkpoint import load_checkpoint
from gptlab.train.optim import lr_at
from tests.conftest import TINY


def tiny(**changes):
    return build_config({**TINY, "wandb": "disabled", **changes})


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_short_run_learns_well_below_chance(tmp_path):
    cfg = tiny(max_steps=100, n_layer=2, n_embd=32, block_size=32, batch_size=32, lr=1e-2, eval_interval=50,
               eval_steps=4)
    summary = run_training(cfg, tmp_path, RunMeta(name="learn"))
    assert summary["status"] == "finished" and summary["steps"] == 100
    first_val = rows(tmp_path / "adhoc" / "learn")[0]["val/loss"]
    assert first_val == pytest.approx(math.log(65), abs=0.3)  # initial loss ~ ln(vocab)
    assert summary["best_val_loss"] < 3.0 < math.log(65) - 1.0


def test_run_directory_follows_the_contract(tmp_path):
    summary = run_training(tiny(), tmp_path, RunMeta(experiment="exp", name="r1"))
    run_dir = tmp_path / "exp" / "r1"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoint.pt"):
        assert (run_dir / name).is_file()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert set(config) >= {"model", "train", "data", "log", "run", "provenance"}
    assert config["model"]["vocab_size"] == 65
    assert set(config["provenance"]) >= {"gptlab_version", "git_commit", "torch_version", "device"}
    assert set(summary) >= {"status", "best_val_loss", "final_val_loss", "steps", "wall_s", "tokens_per_s",
                            "n_params"}
    steps = [r["step"] for r in rows(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    assert all("val/loss" in r for r in rows(run_dir) if r["step"] % 10 == 0)
    assert not (run_dir / "wandb").exists()  # disabled writes no wandb files


def test_interrupted_run_resumes_exactly_where_it_stopped(tmp_path):
    straight = run_training(tiny(), tmp_path, RunMeta(name="straight"))

    def stop_at_20(row):
        if row["step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(tiny(), tmp_path, RunMeta(name="resumed"), on_log=stop_at_20)
    run_dir = tmp_path / "adhoc" / "resumed"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    resumed = run_training(tiny(), tmp_path, RunMeta(name="resumed"))
    assert resumed["status"] == "finished" and resumed["steps"] == 30
    steps = [r["step"] for r in rows(run_dir)]
    assert steps == sorted(set(steps))  # strictly increasing, no duplicated rows
    # model, optimizer and both RNG streams were restored: the same run as without the interruption
    assert resumed["final_val_loss"] == pytest.approx(straight["final_val_loss"], abs=1e-5)


def test_a_resumed_run_keeps_the_arithmetic_it_started_with(tmp_path, monkeypatch):
    """Started where `dtype: auto` meant float32, resumed where it means bf16 (another machine, simulated):
    the resumed attempt keeps float32 and the fused kernel, and ends exactly as an uninterrupted float32
    run; a fresh run on the bf16 machine computes in bf16."""
    import gptlab.train.device as device

    monkeypatch.setattr(device, "native_bf16_cpu", lambda: False)
    straight = run_training(tiny(device="cpu"), tmp_path, RunMeta(name="straight"))

    def stop_at_20(row):
        if row["step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(tiny(device="cpu"), tmp_path, RunMeta(name="moved"), on_log=stop_at_20)
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: True)
    resumed = run_training(tiny(device="cpu"), tmp_path, RunMeta(name="moved"))
    provenance = yaml.safe_load((tmp_path / "adhoc" / "moved" / "config.yaml").read_text())["provenance"]
    assert (provenance["dtype"], provenance["attention"]) == ("float32", "fused")
    assert resumed["final_val_loss"] == pytest.approx(straight["final_val_loss"], abs=1e-5)
    run_training(tiny(device="cpu"), tmp_path, RunMeta(name="fresh"))
    provenance = yaml.safe_load((tmp_path / "adhoc" / "fresh" / "config.yaml").read_text())["provenance"]
    assert (provenance["dtype"], provenance["attention"]) == ("bfloat16", "manual")


def test_kept_runtime_reads_provenance_and_knows_runs_stored_before_it():
    from gptlab.train.device import Runtime, kept_runtime

    now = Runtime(torch.device("cpu"), torch.bfloat16, False, attn_backend="manual")
    auto = tiny().train
    assert kept_runtime(now, auto, {"provenance": {"dtype": "float32", "attention": "fused"}}) == \
        Runtime(torch.device("cpu"), torch.float32, False, attn_backend="fused")
    assert kept_runtime(now, auto, {"provenance": {"dtype": "bfloat16", "attention": "manual"}}) == now
    # 0.2.0 recorded neither: its CPU auto was float32 with the fused kernel
    old = {"provenance": {"device": "cpu", "torch_version": "2.13.0"}}
    assert kept_runtime(now, auto, old) == Runtime(torch.device("cpu"), torch.float32, False, attn_backend="fused")
    # explicit keys meant the same then as now
    explicit = tiny(dtype="bfloat16", attn_backend="manual").train
    assert kept_runtime(now, explicit, old) == now
    assert kept_runtime(now, auto, None) == now  # no readable config.yaml: this machine's resolution


def test_a_finished_run_is_not_trained_again(tmp_path):
    first = run_training(tiny(), tmp_path, RunMeta(name="once"))
    again = run_training(tiny(), tmp_path, RunMeta(name="once"))
    assert again == first


def test_exploding_lr_is_recorded_as_diverged(tmp_path):
    summary = run_training(tiny(lr=1e4, grad_clip=0.0, warmup_steps=0), tmp_path, RunMeta(name="boom"))
    assert summary["status"] == "diverged"
    assert summary["steps"] < 30


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    cfg = build_config({"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "max_steps": 110}).train
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)
    linear = build_config({"lr": 1.0, "min_lr": 0.0, "warmup_steps": 0, "max_steps": 100,
                           "lr_schedule": "linear"}).train
    assert lr_at(50, linear) == pytest.approx(0.5)
    const = build_config({"lr_schedule": "constant", "warmup_steps": 0}).train
    assert lr_at(4000, const) == const.lr


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    """2 micro-batches of 8 draw the same 16 windows as one batch of 16 (one generator), and the mean of
    the two halves' mean losses is the mean over 16: the same update, up to float summation order."""
    def train(name, **changes):
        # float32: the claim is equality up to summation order, which bf16's rounding would swamp
        summary = run_training(tiny(max_steps=10, eval_interval=5, log_interval=1, dtype="float32", **changes),
                               tmp_path,
                               RunMeta(name=name))
        assert summary["status"] == "finished"
        run_dir = tmp_path / "adhoc" / name
        weights = load_checkpoint(run_dir / "checkpoint.pt")["model"]
        return summary, [r["train/loss"] for r in rows(run_dir) if "train/loss" in r], weights

    # eval windows = eval_steps x batch_size: 32 on every side, so val losses score the same text
    acc, acc_losses, acc_w = train("acc", batch_size=8, grad_accum=2, eval_steps=4)
    big, big_losses, big_w = train("big", batch_size=16, grad_accum=1, eval_steps=2)
    small, _, small_w = train("small", batch_size=8, grad_accum=1, eval_steps=4)
    assert len(acc_losses) == len(big_losses) == 10
    assert acc_losses == pytest.approx(big_losses, abs=1e-5)
    assert acc["final_val_loss"] == pytest.approx(big["final_val_loss"], abs=1e-5)
    assert acc_w.keys() == big_w.keys()
    for name in acc_w:
        torch.testing.assert_close(acc_w[name], big_w[name], rtol=0, atol=1e-5, msg=name)
    # the comparison can tell batch sizes apart: half the batch is a different run
    assert abs(small["final_val_loss"] - big["final_val_loss"]) > 1e-3
    assert max((small_w[n] - big_w[n]).abs().max().item() for n in big_w) > 1e-3
