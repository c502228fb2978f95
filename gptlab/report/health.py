"""Run health per variant: did it train at all, and did it train cleanly?

    ok            none of the below
    diverged      at least one seed ended with status diverged
    not_learning  most finished seeds' best val loss stays within NOT_LEARNING_TOL of (or above) the
                  loss of a model that learned nothing (ln(vocab)) or only character frequencies (the
                  unigram entropy of the run's data)
    unstable      most finished seeds have a train-loss spike: a rise between two logged steps more than
                  SPIKE_STDS stds of the previous SPIKE_WINDOW changes above their mean (and >= SPIKE_MIN nats)
    overfit       most finished seeds reach their best val loss before OVERFIT_AT of the steps and
                  end worse than that best by more than the equivalence margin
The first that applies, in this order, is the variant's health. Only loss metrics (nats) are judged
against ln(vocab) and the unigram entropy.
"""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

NOT_LEARNING_TOL = 0.05  # nats
SPIKE_WINDOW, SPIKE_STDS, SPIKE_MIN = 10, 6.0, 0.1
OVERFIT_AT = 0.75  # best val loss reached before this fraction of the steps
HEALTH = ("ok", "diverged", "not_learning", "unstable", "overfit")


def default_data_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare.txt"


@lru_cache(maxsize=8)
def unigram_entropy(path: str) -> float:
    """Entropy (nats) of the character frequencies of a text file; NaN when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return math.nan
    if not text:
        return math.nan
    counts = np.array(list(Counter(text).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def floors(row: pd.Series) -> dict[str, float]:
    """The no-information losses of one run: ln(vocab) and the unigram entropy of its data."""
    out = {}
    vocab = row.get("vocab_size")
    if vocab is not None and vocab == vocab and float(vocab) > 1:
        out["ln(vocab)"] = math.log(float(vocab))
    path = row.get("path")
    data = Path(path) if isinstance(path, str) and path else default_data_path()
    entropy = unigram_entropy(str(data))
    if math.isfinite(entropy):
        out["unigram entropy"] = entropy
    return out


def has_spike(losses: np.ndarray) -> bool:
    """A step-to-step rise of the train loss more than SPIKE_STDS running stds of those changes above
    their running mean (the trend removed) and at least SPIKE_MIN nats."""
    changes = np.diff(losses[np.isfinite(losses)])
    for i in range(5, len(changes)):
        window = changes[max(0, i - SPIKE_WINDOW):i]
        if changes[i] > SPIKE_MIN and changes[i] - window.mean() > SPIKE_STDS * window.std():
            return True
    return False


def run_health(row: pd.Series, history: pd.DataFrame, margin: float) -> tuple[str, str]:
    """(health, reason) of one finished run; `history` holds this run's rows only."""
    best = row.get("best_val_loss")
    if best is not None and best == best:
        lows = floors(row)
        for name, level in sorted(lows.items(), key=lambda kv: -kv[1]):  # the nearest floor from above
            if best >= level - NOT_LEARNING_TOL:
                return "not_learning", f"best val loss {best:.3f} vs {name} {level:.3f}"
    if "train/loss" in history and has_spike(history["train/loss"].to_numpy(float)):
        return "unstable", "train-loss spike"
    if "val/loss" in history:
        val = history[["step", "val/loss"]].dropna()
        if len(val) >= 3:
            at = val["val/loss"].to_numpy(float)
            steps = val["step"].to_numpy(float)
            i = int(np.nanargmin(at))
            if steps[i] < OVERFIT_AT * steps[-1] and at[-1] - at[i] > margin:
                return "overfit", f"best val loss at step {int(steps[i])}, final {at[-1] - at[i]:.3f} worse"
    return "ok", ""


def variant_health(runs: pd.DataFrame, history: pd.DataFrame, labels: list[str],
                   margin: float) -> pd.DataFrame:
    """One row per label: health, the reason (a short phrase) and how many seeds it applies to."""
    by_run = {name: rows for name, rows in history.groupby("run")} if len(history) else {}
    rows = []
    for label in labels:
        mine = runs[runs["label"] == label]
        finished = mine[mine["status"] == "finished"]
        n_div = int((mine["status"] == "diverged").sum())
        if n_div:
            rows.append({"variant": label, "health": "diverged", "health_n": n_div,
                         "health_of": len(mine), "health_reason": "loss became non-finite or exploded"})
            continue
        verdicts = [run_health(r, by_run.get(r["run"], pd.DataFrame()), margin) for _, r in finished.iterrows()]
        if not verdicts:  # nothing finished and nothing diverged (failed, running): health unknown
            rows.append({"variant": label, "health": "", "health_n": 0, "health_of": 0, "health_reason": ""})
            continue
        counts = Counter(h for h, _ in verdicts)
        health, n = "ok", 0
        for name in ("not_learning", "unstable", "overfit"):
            if counts[name] and 2 * counts[name] >= len(verdicts):
                health, n = name, counts[name]
                break
        reason = next((why for h, why in verdicts if h == health), "")
        rows.append({"variant": label, "health": health, "health_n": n, "health_of": len(verdicts),
                     "health_reason": reason})
    return pd.DataFrame(rows).set_index("variant", drop=False)
