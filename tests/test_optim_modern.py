"""The optimizer axis and μP's optimizer side: Muon (torch.optim.Muon on the hidden matrices, AdamW on the
rest) checked against torch.optim.Muon itself, its parameter split, its exact resume; μP's AdamW lr
multipliers against Tensor Programs V's table 3, unpacked and packed; bad values exit 2 in one line."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gptlab.config import build_config
from gptlab.errors import ConfigError
from gptlab.model import build_model
from gptlab.train import RunMeta, run_training
from gptlab.train.checkpoint import load_checkpoint
from gptlab.train.evaluate import lm_loss
from gptlab.train.muon import MuonAdamW, build_muon, split_parameters
from gptlab.train.optim import build_optimizer
from tests.conftest import TINY, assert_user_error, cli, tiny_args

MUON = {"optimizer": "muon", "muon_lr": 0.02, "muon_momentum": 0.95}


def tiny(**changes):
    return build_config({**TINY, "wandb": "disabled", "vocab_size": 65, **changes})


def batch(seed: int = 0, B: int = 4, T: int = 16, V: int = 65):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (B, T + 1), generator=g)
    return x[:, :-1], x[:, 1:]


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
def test_muon_update_equals_torch_muon_on_the_same_parameter_and_gradient(adjust):
    """Three steps (momentum buffers in play) of the run's optimizer against a fresh torch.optim.Muon fed
    copies of each hidden matrix and its gradient, at the group lr the schedule set."""
    cfg = tiny(**MUON, muon_adjust_lr=adjust, weight_decay=0.1)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt = build_optimizer(model, cfg.train)
    assert isinstance(opt, MuonAdamW)
    hidden = [p for _, p in split_parameters(model)["hidden"]]
    copies = [p.detach().clone().requires_grad_() for p in hidden]
    lr = 0.5 * cfg.train.lr  # a point mid-schedule: Muon's lr follows it in proportion
    reference = torch.optim.Muon(copies, lr=lr * cfg.train.muon_lr / cfg.train.lr, weight_decay=0.1,
                                 momentum=0.95, nesterov=True, adjust_lr_fn=adjust)
    for step in range(3):
        for group in opt.param_groups:  # as TrainStep sets them
            group["lr"] = lr * group["lr_scale"]
        x, y = batch(step)
        lm_loss(model(x), y).backward()
        for p, c in zip(hidden, copies):
            c.grad = p.grad.clone()
        opt.step()
        reference.step()
        opt.zero_grad()
        for p, c in zip(hidden, copies):
            assert torch.equal(p.detach(), c.detach())
    assert not torch.equal(copies[0].detach(), hidden[0].detach() * 0)  # the matrices moved


def test_the_schedule_scales_muon_lr_and_lr_alike():
    from gptlab.train.device import resolve_runtime
    from gptlab.train.optim import lr_at
    from gptlab.train.step import TrainStep

    cfg = tiny(**MUON, device="cpu", compile=False, warmup_steps=5, max_steps=20)
    model = build_model(cfg.model)
    step = TrainStep(cfg, model, resolve_runtime(cfg.train), torch.arange(2000) % 65)
    for s in (0, 3, 12):
        step(lr_at(s, cfg.train))
        muon, embedding, gains = step.opt.param_groups
        assert embedding["lr"] == gains["lr"] == lr_at(s, cfg.train)
        assert muon["lr"] == pytest.approx(lr_at(s, cfg.train) * 0.02 / cfg.train.lr, rel=1e-12)


HEAD_AND_TABLES = {"tok_emb.weight", "lm_head.weight", "pos_emb.wpe.weight"}


@pytest.mark.parametrize("changes", [{}, {"tie_weights": False}, {"bias": True, "pos_encoding": "rope"},
                                     {"activation": "swiglu", "norm": "rmsnorm"},
                                     {"pos_encoding": "learned", "tie_weights": False, "bias": True}])
def test_every_parameter_lands_in_exactly_one_group_and_only_tables_and_head_are_2d_in_adamw(changes):
    cfg = tiny(**MUON, **changes)
    model = build_model(cfg.model)
    opt = build_optimizer(model, cfg.train)
    muon_ids = [id(p) for g in opt.muon.param_groups for p in g["params"]]
    adamw_ids = [id(p) for g in opt.adamw.param_groups for p in g["params"]]
    every = [id(p) for p in model.parameters()]  # a tied tensor once
    assert sorted(muon_ids + adamw_ids) == sorted(every) and len(set(muon_ids + adamw_ids)) == len(every)
    names = {id(p): n for n, p in model.named_parameters()}
    in_adamw_2d = {names[i] for i in adamw_ids if dict(model.named_parameters())[names[i]].dim() == 2}
    assert in_adamw_2d == {n for n, p in model.named_parameters() if n in HEAD_AND_TABLES}
    expected_muon = {n for n, p in model.named_parameters() if p.dim() == 2 and n not in HEAD_AND_TABLES}
    assert {names[i] for i in muon_ids} == expected_muon and expected_muon
    assert all(".attn." in n or ".mlp." in n for n in expected_muon)
    decays = {names[id(p)]: g["weight_decay"] for g in opt.adamw.param_groups for p in g["params"]}
    assert all((decays[n] > 0) == (n in HEAD_AND_TABLES) for n in decays)


def test_a_muon_run_resumes_bit_exactly(tmp_path):
    def cfg():
        return tiny(**MUON, device="cpu")
    straight = run_training(cfg(), tmp_path, RunMeta(name="straight"))

    def stop_at_20(row):
        if row["step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(cfg(), tmp_path, RunMeta(name="resumed"), on_log=stop_at_20)
    middle = load_checkpoint(tmp_path / "adhoc" / "resumed" / "checkpoint.pt")
    assert middle["step"] == 20 and set(middle["optimizer"]) == {"muon", "adamw"}
    assert middle["optimizer"]["muon"]["state"]  # the momentum buffers are saved
    resumed = run_training(cfg(), tmp_path, RunMeta(name="resumed"))
    assert resumed["status"] == "finished" and resumed["steps"] == 30
    assert resumed["final_val_loss"] == straight["final_val_loss"]
    a = load_checkpoint(tmp_path / "adhoc" / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "adhoc" / "resumed" / "checkpoint.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for i, state in a["optimizer"]["muon"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["muon"]["state"][i]["momentum_buffer"])


# ---- μP ----

def test_mup_scales_hidden_adamw_lr_by_base_width_over_width_and_nothing_else():
    """Tensor Programs V, table 3, Adam column: hidden weights' lr ∝ 1/fan_in (normalized at the base
    width), input weights, output weights, biases and gains keep the base lr."""
    for width, base in ((64, 16), (32, 32), (16, 64)):
        cfg = tiny(parametrization="mup", mup_base_width=base, n_embd=width, n_head=2, bias=True)
        model = build_model(cfg.model)
        opt = build_optimizer(model, cfg.train)
        lr_of = {id(p): 0.01 * g["lr_scale"] for g in opt.param_groups for p in g["params"]}
        for name, p in model.named_parameters():
            hidden = p.dim() == 2 and name not in HEAD_AND_TABLES
            assert lr_of[id(p)] == pytest.approx(0.01 * (base / width if hidden else 1.0), rel=1e-12), name


def test_standard_keeps_the_two_adamw_groups_as_before():
    cfg = tiny(bias=True)
    model = build_model(cfg.model)
    decay, plain = build_optimizer(model, cfg.train).param_groups
    assert [id(p) for p in decay["params"]] == [id(p) for p in model.parameters() if p.dim() >= 2]
    assert [id(p) for p in plain["params"]] == [id(p) for p in model.parameters() if p.dim() < 2]
    assert decay["lr_scale"] == plain["lr_scale"] == 1.0


def test_packed_mup_members_step_as_their_unpacked_adamw():
    """StackedAdamW with each member's own lr and μP's hidden factor against each member's torch AdamW."""
    from gptlab.pack.optim import StackedAdamW
    from gptlab.pack.stacked import stack_models
    from gptlab.train.optim import hidden_lr_scale, is_mup, lr_factors

    cfgs = [tiny(parametrization="mup", mup_base_width=8, n_embd=32, lr=lr, seed=s)
            for s, lr in ((0, 1e-2), (1, 3e-3))]
    models = []
    for c in cfgs:
        torch.manual_seed(c.train.seed)
        models.append(build_model(c.model))
    stacked, params = stack_models(models, [0.0, 0.0])
    hidden = {n for n, f in lr_factors(models[0]).items() if f != 1.0}
    assert hidden == {n for n, _ in split_parameters(models[0])["hidden"]}
    assert all(is_mup(c.model) for c in cfgs)
    packed = StackedAdamW(params, [0.1, 0.1], [0.9, 0.9], [0.99, 0.99], hidden,
                          [hidden_lr_scale(c.model) for c in cfgs])
    opts = [build_optimizer(m, c.train) for m, c in zip(models, cfgs)]
    x, y = batch(0)
    for _ in range(2):
        lm_loss(stacked(torch.cat([x, x])), torch.cat([y, y])).backward()  # mean over 2B rows: grads halved
        packed.step([c.train.lr for c in cfgs], [True, True])
        packed.zero_grad()
        for m, o, c in zip(models, opts, cfgs):
            for g in o.param_groups:
                g["lr"] = c.train.lr * g["lr_scale"]
            (0.5 * lm_loss(m(x), y)).backward()
            o.step()
            o.zero_grad()
    for i, m in enumerate(models):
        for name, p in m.named_parameters():
            assert torch.allclose(params[name][i], p, atol=1e-6), name
    moved = {n: (params[n][0] - params[n][1]).abs().max() for n in hidden}
    assert all(v > 0 for v in moved.values())


def test_a_packed_mup_run_ends_as_its_unpacked_run(tmp_path):
    """Through the pack loop (its wiring of the hidden names and width factors into StackedAdamW): two μP
    members at different lrs, packed, against the same runs unpacked; checkpoints keep the scaled lrs."""
    from gptlab.pack.loop import run_pack

    cfgs = [tiny(parametrization="mup", mup_base_width=8, n_embd=32, lr=lr, device="cpu", dtype="float32")
            for lr in (1e-2, 3e-3)]
    metas = [RunMeta(experiment="p", name=f"lr{c.train.lr}") for c in cfgs]
    packed = run_pack(cfgs, metas, tmp_path / "packed")
    for c, meta, summary in zip(cfgs, metas, packed):
        alone = run_training(c, tmp_path / "alone", meta)
        assert summary["status"] == alone["status"] == "finished", summary.get("error")
        assert summary["final_val_loss"] == pytest.approx(alone["final_val_loss"], abs=1e-5)
        pc = load_checkpoint(tmp_path / "packed" / "p" / meta.name / "checkpoint.pt")
        uc = load_checkpoint(tmp_path / "alone" / "p" / meta.name / "checkpoint.pt")
        assert pc["optimizer"]["param_groups"] == uc["optimizer"]["param_groups"]
        assert sorted(g["lr_scale"] for g in uc["optimizer"]["param_groups"]) == [0.25, 1.0, 1.0]
        for name, tensor in uc["model"].items():
            assert torch.allclose(pc["model"][name], tensor, atol=1e-5), name


# ---- bad values ----

def test_unknown_optimizer_exits_2_in_one_line(tmp_path):
    out = cli("train", "optimizer=sgd", "max_steps=1", cwd=tmp_path)
    assert_user_error(out, "optimizer")
    assert "muon" in out.stderr


def test_a_parameter_muon_cannot_take_is_a_one_line_config_error():
    """split_parameters sends every 1-D parameter to AdamW, so no config puts one in Muon; build_muon still
    refuses one handed to it, and a model carrying a 3-D weight (a plugin's) under optimizer=muon."""
    cfg = tiny(**MUON)
    gain = nn.Parameter(torch.ones(4))
    with pytest.raises(ConfigError) as err:
        build_muon({"hidden": [("norm.weight", gain)], "embedding": [], "gain": []}, cfg.train, {})
    assert "optimizer" in str(err.value) and "\n" not in str(err.value) and "(4,)" in str(err.value)
    model = build_model(cfg.model)
    model.blocks[0].extra = nn.Parameter(torch.zeros(2, 3, 4))
    with pytest.raises(ConfigError, match="optimizer=adamw"):
        build_optimizer(model, cfg.train)
    assert isinstance(build_optimizer(model, tiny().train), torch.optim.AdamW)  # AdamW takes any shape


BANK_PLUGIN = '''
"""A test plugin: an MLP holding its two matrices as one (2, C, H) bank, a 3-D weight."""
import torch
from torch import nn
import gptlab


@gptlab.register("activation", "bank3d")
class Bank(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bank = nn.Parameter(torch.randn(2, cfg.n_embd, cfg.mlp_hidden) * 0.02)

    def forward(self, x):
        return torch.relu(x @ self.bank[0]) @ self.bank[1].transpose(0, 1)
'''


def test_a_plugin_weight_muon_cannot_take_exits_2_before_anything_is_written(tmp_path):
    (tmp_path / "bank3d_plugin.py").write_text(BANK_PLUGIN)
    args = ["train", *tiny_args(max_steps=1), "plugins=[bank3d_plugin]", "activation=bank3d", "--runs",
            str(tmp_path / "runs")]
    out = cli(*args, "optimizer=muon", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert_user_error(out, "optimizer", "blocks.0.mlp.bank", "(2, 16, 64)", "optimizer=adamw")
    assert not (tmp_path / "runs").exists()
    assert cli(*args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}).returncode == 0  # AdamW trains it


def test_muon_runs_are_planned_unpacked_with_the_reason():
    from types import SimpleNamespace

    from gptlab.pack.jobs import describe_packs, pack_jobs

    jobs = [SimpleNamespace(run=SimpleNamespace(config=tiny(**MUON, seed=s)), action="fresh", store=None)
            for s in range(3)]
    assert all(not hasattr(u, "members") for u in pack_jobs(jobs, "seeds"))
    lines = describe_packs(jobs, "seeds")
    assert lines[0] == ("--pack: 3 run(s) unpacked, optimizer=muon: the pack's stacked optimizer is AdamW only, "
                        "so Muon runs train unpacked")
    adamw = [SimpleNamespace(run=SimpleNamespace(config=tiny(seed=s)), action="fresh", store=None) for s in range(3)]
    assert len(pack_jobs(adamw, "seeds")) == 1


def test_bad_muon_values_exit_2(tmp_path):
    for arg, key in (("muon_lr=0", "muon_lr"), ("muon_adjust_lr=bogus", "muon_adjust_lr")):
        assert_user_error(cli("train", "optimizer=muon", arg, "max_steps=1", cwd=tmp_path), key)

