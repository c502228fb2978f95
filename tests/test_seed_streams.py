"""A run's seed splits into three streams (gptlab/train/streams.py): initial weights keyed by parameter
name, data order, dropout masks. Variants share the initial values of the parameters they have in common;
init_seed and data_seed vary one stream with the other held; each packed member draws its own masks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptlab.config import build_config
from gptlab.model import build_model
from gptlab.model.dropout import Dropout
from gptlab.model.init import stream_seed
from gptlab.pack.stacked import StackedDropout
from gptlab.train.streams import dropout_generator, run_streams
from gptlab.train.trainer import RunMeta, run_training

MODEL = {"vocab_size": 65, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0}


def weights(seed: int = 0, **model) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)  # the trainer's rule: the init seed, then build
    return {n: p.detach() for n, p in build_model({**MODEL, **model}).named_parameters()}


@pytest.mark.parametrize("change, only_one_side", [
    ({"pos_encoding": "rope"}, {"pos_emb.wpe.weight"}),
    ({"tie_weights": False}, {"lm_head.weight"}),
    ({"activation": "swiglu"}, {"blocks.0.mlp.fc.weight", "blocks.1.mlp.fc.weight", "blocks.0.mlp.fc_gate.weight",
                                "blocks.1.mlp.fc_gate.weight", "blocks.0.mlp.fc_up.weight", "blocks.1.mlp.fc_up.weight"}),
    ({"norm": "rmsnorm", "block": "parallel"}, {"blocks.0.norm_1.weight", "blocks.0.norm_2.weight",
                                                "blocks.1.norm_1.weight", "blocks.1.norm_2.weight",
                                                "blocks.0.norm.weight", "blocks.1.norm.weight"}),
])
def test_variants_share_the_initial_values_of_every_parameter_they_both_have(change, only_one_side):
    base, variant = weights(3), weights(3, **change)
    assert set(base) ^ set(variant) == only_one_side
    shared = [n for n in set(base) & set(variant) if base[n].shape == variant[n].shape]
    assert len(shared) >= 8
    for name in shared:
        assert torch.equal(base[name], variant[name]), name
    # and it is the name that carries it: the first block's qkv is not the second's
    assert not torch.equal(base["blocks.0.attn.qkv.weight"], base["blocks.1.attn.qkv.weight"])


def test_an_untied_head_starts_as_the_tied_one():
    """A tied model's LM head is its token embedding: the untied model's head starts at those same values (and the
    untied embedding too), so tied vs untied differ at step 0 in nothing."""
    tied, untied = weights(5), weights(5, tie_weights=False)
    assert torch.equal(untied["lm_head.weight"], tied["tok_emb.weight"])
    assert torch.equal(untied["tok_emb.weight"], tied["tok_emb.weight"])


def test_different_seeds_start_from_different_weights():
    a, b = weights(0), weights(1)
    for name, p in a.items():
        if p.dim() == 2:  # gains start at 1 under every seed
            assert not torch.equal(p, b[name]), name


def test_the_stream_of_a_name_is_stable_across_processes_and_releases():
    """blake2b, not Python's salted hash(): a golden value, so a change of the keying (which would change
    every run's initial weights) cannot pass unnoticed."""
    assert stream_seed(0, "tok_emb.weight") == 984216458864722426
    assert stream_seed(1, "tok_emb.weight") != stream_seed(0, "tok_emb.weight")


def test_dropout_stream_is_its_own():
    t = build_config({"seed": 4}).train
    s = run_streams(t)
    assert (s.init, s.data) == (4, 4) and s.dropout not in (4, stream_seed(4, "tok_emb.weight"))
    s = run_streams(build_config({"seed": 4, "init_seed": 9, "data_seed": 7}).train)
    assert (s.init, s.data, s.dropout) == (9, 7, run_streams(t).dropout)  # dropout follows `seed`


# ---- the trainer: each key moves its own stream and nothing else ----------------------------------

BASE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4, "max_steps": 2, "lr": 3e-3,
        "eval_interval": 2, "eval_steps": 2, "log_interval": 1, "warmup_steps": 0, "dropout": 0.0,
        "wandb": "disabled", "dtype": "float32"}


def first_rows(root: Path, name: str, **keys) -> tuple[float, float, torch.Tensor]:
    """(val loss at step 0: the initial weights alone, train loss of step 1: the weights and the first
    batch, the checkpoint's data-generator state)."""
    run_training(build_config({**BASE, **keys}), root, RunMeta("e", name))
    rows = [json.loads(line) for line in (root / "e" / name / "metrics.jsonl").read_text().splitlines()]
    state = torch.load(root / "e" / name / "checkpoint.pt", weights_only=False)
    return rows[0]["val/loss"], rows[1]["train/loss"], state["batch_rng"]


def test_init_seed_and_data_seed_vary_one_stream_with_the_other_held(tmp_path: Path):
    torch.set_num_threads(1)
    val0, train1, data = first_rows(tmp_path, "base", seed=0)
    val_i, train_i, data_i = first_rows(tmp_path, "init", seed=0, init_seed=5)
    val_d, train_d, data_d = first_rows(tmp_path, "data", seed=0, data_seed=5)
    val_5, _, data_5 = first_rows(tmp_path, "seed5", seed=5)
    assert val_d == val0 and val_i != val0            # the initial weights: init_seed's stream only
    assert val_i == val_5                              # init_seed=5 starts where seed=5 starts
    assert torch.equal(data_i, data) and not torch.equal(data_d, data)  # the batches: data_seed's only
    assert torch.equal(data_d, data_5)
    assert train_d != train1 and train_i != train1


@pytest.mark.parametrize("key, value, fix", [("data_seed", -1, "data_seed=null"), ("init_seed", 2**63, "init_seed=null"),
                                             ("init_seed", "x", "integer")])
def test_bad_stream_seeds_are_refused_in_one_line(key, value, fix):
    from gptlab.errors import ConfigError

    with pytest.raises(ConfigError, match=fix):
        build_config({key: value})


# ---- dropout masks: a packed member's are its unpacked run's, and its own ---------------------------

def test_packed_members_draw_their_own_dropout_masks_equal_to_their_unpacked_runs():
    B, T, C, p = 4, 8, 16, 0.5
    trains = [build_config({"seed": s, "dropout": p}).train for s in (0, 1, 2)]
    unpacked = []
    for t in trains:
        drop = Dropout(p).train()
        drop.generator = dropout_generator(t, torch.device("cpu"))
        unpacked.append([drop(torch.ones(B, T, C)) for _ in range(2)])  # two layers' masks, in order
    stacked = StackedDropout([p] * 3, [dropout_generator(t, torch.device("cpu")) for t in trains]).train()
    packed = [stacked(torch.ones(3 * B, T, C)).view(3, B, T, C) for _ in range(2)]
    for m in range(3):
        for layer in range(2):
            assert torch.equal(packed[layer][m], unpacked[m][layer]), (m, layer)
    assert not torch.equal(packed[0][0], packed[0][1]) and not torch.equal(packed[0][1], packed[0][2])
    keep = (packed[0] > 0).float().mean().item()
    assert keep == pytest.approx(1 - p, abs=0.05) and packed[0].max().item() == pytest.approx(1 / (1 - p))


# ---- runs stored before the streams stay resumable ------------------------------------------------

def test_a_run_stored_by_0_3_1_resumes_to_the_loss_0_3_1_reaches(tmp_path: Path):
    """tests/data/stored_0_3_1: a run trained by gptlab 0.3.1 to its step-10 checkpoint and interrupted (dropout
    0); expected.json holds the final val loss 0.3.1 reached training the same config to step 20 without a
    stop. 0.4.0 resumes it (weights, AdamW state, the data stream from the checkpoint) to the same bits."""
    import shutil

    stored = Path(__file__).parent / "data" / "stored_0_3_1"
    expected = json.loads((stored / "expected.json").read_text())
    shutil.copytree(stored / "stored", tmp_path / "stored")
    torch.set_num_threads(1)
    summary = run_training(build_config(expected["config"]), tmp_path, RunMeta("stored", "run"))
    assert summary["status"] == "finished" and summary["steps"] == 20
    assert summary["final_val_loss"] == expected["final_val_loss"]
