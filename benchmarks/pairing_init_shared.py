"""Which initial weights seed s of a variant shares with seed s of the baseline, under the gptlab on PYTHONPATH.

Run once per checkout (benchmarks/pairing.md, part 1: why a variant's correlation moves between inits or not):

    PYTHONPATH=. python benchmarks/pairing_init_shared.py                 # 0.4.0: name-keyed streams
    PYTHONPATH=/path/to/06f51c0 python benchmarks/pairing_init_shared.py  # 0.3.1: one global stream

Per variant (every built-in value the checkout declares, on the recipe's shapes): the parameters of equal
name and shape that start equal, those that start different, and, for tie_weights=false, whether the
untied LM head starts at the tied model's embedding (the matrix that is the tied model's output layer).
"""
from __future__ import annotations

import torch

from gptlab import version
from gptlab.axes import AXES, Axis, check_combination
from gptlab.model.gpt import build_model

RECIPE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64, "vocab_size": 65, "dropout": 0.0}


def initial(overrides: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # 0.3.1 draws from this stream; 0.4.0 keys its own streams by (seed, name)
    model = build_model({**RECIPE, **overrides})
    return {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}


def main() -> None:
    print(f"gptlab {getattr(version, '__version__', '?')}")
    base = initial({})
    defaults = {n: a.default for n, a in AXES.items()}
    for name, axis in AXES.items():
        for value in axis.values(lambda origin: False)[1:]:
            try:
                check_combination({**defaults, name: value})
            except Exception:  # noqa: BLE001 - an excluded combination
                continue
            other = initial({name: value})
            both = [n for n in base if n in other and base[n].shape == other[n].shape]
            differ = [n for n in both if not torch.equal(base[n], other[n])]
            line = f"{name}={Axis.spell(value)}: {len(both) - len(differ)} of {len(both)} common parameters equal"
            if differ:
                line += "; differ: " + ", ".join(differ)
            if name == "tie_weights":
                line += f"; untied lm_head == tied tok_emb: {torch.equal(other['lm_head.weight'], base['tok_emb.weight'])}"
            print(line)


if __name__ == "__main__":
    main()
