"""μP transfer target (issue 31): from a stored `experiments/mup_transfer.yaml` study, each parametrization's
best lr per width (mean over finished seeds, the numbers the report's lr_transfer figure draws:
gptlab.report.figures.transfer.transfer_means) and how far it moves across the widths, in grid steps
(log2 of the largest over the smallest best lr; the grid is in factor-2 steps). Target: at most 1 step
under mup over widths spanning 8x or more, more under standard.

    python benchmarks/mup_transfer.py [--runs runs] [--experiment mup_transfer]
"""
from __future__ import annotations

import argparse
import math

from gptlab.frames.load import load
from gptlab.stats.summary import Criterion, metric_values
from gptlab.report.figures.transfer import transfer_means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--experiment", default="mup_transfer")
    args = parser.parse_args()
    loaded = load(args.runs, experiments=[args.experiment])
    criterion = Criterion.from_spec(loaded.specs.get(args.experiment))
    runs = loaded.runs.assign(value=metric_values(loaded.runs, loaded.history, criterion).values)
    for variant, means in transfer_means(runs, "n_embd", criterion.sign).items():
        best = means[means["best"]].sort_values("width")
        widths = best["width"].tolist()
        print(f"{variant}: best lr per n_embd: " + ", ".join(f"{w:g}: {lr:g} ({m:.4f}, n={n})" for w, lr, m, n in
                                                          zip(widths, best["lr"], best["mean"], best["n"])))
        steps = math.log2(best["lr"].max() / best["lr"].min())
        print(f"{variant}: widths span {max(widths) / min(widths):g}x; the best lr moves by {steps:g} grid step(s) "
              f"(factor {best['lr'].max() / best['lr'].min():g})")
        table = means.pivot(index="lr", columns="width", values="mean")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        print()


if __name__ == "__main__":
    main()
