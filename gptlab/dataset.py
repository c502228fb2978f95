"""Character-level text data: tokenizer from the text, 90/10 split, random training windows and a
fixed set of validation windows (the same for every run and every eval)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from gptlab.config import DataConfig
from gptlab.errors import DataError

DEFAULT_TEXT = "tinyshakespeare.txt"


def default_data_path() -> Path:
    return Path(str(resources.files("gptlab") / "data" / DEFAULT_TEXT))


@dataclass(frozen=True)
class CharTokenizer:
    chars: tuple[str, ...]  # sorted unique characters of the text; id = index

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(tuple(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        stoi = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(stoi))
        if unknown:
            raise DataError(f"characters not in the training vocabulary: {''.join(unknown)!r}",
                            key="prompt", fix="use only characters present in the training text")
        return [stoi[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


@dataclass(frozen=True)
class TextData:
    tokenizer: CharTokenizer
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor    # (N_val,) int64 token ids
    path: str


def read_text(path: str | None) -> tuple[str, str]:
    """(text, resolved path); DataError for a missing, unreadable or empty file."""
    p = Path(path).expanduser() if path else default_data_path()
    if not p.is_file():
        raise DataError(f"data file not found: {p}", key="data.path", fix="point data.path at a UTF-8 text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"data file is not UTF-8 text: {p}", key="data.path",
                        fix="convert it to UTF-8") from None
    if not text:
        raise DataError(f"data file is empty: {p}", key="data.path", fix="point data.path at a non-empty file")
    return text, str(p)


def load_data(cfg: DataConfig, block_size: int) -> TextData:
    """Tokenize and split; the split must hold more than one context window on each side."""
    text, path = read_text(cfg.path)
    tokenizer = CharTokenizer.from_text(text)
    if tokenizer.vocab_size < 2:
        raise DataError(f"data file {path} holds a single distinct character ({text[0]!r}): there is nothing to "
                        "predict and every loss would be 0", key="data.path", fix="use a real text")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n_val = int(len(ids) * cfg.val_fraction)
    train, val = ids[: len(ids) - n_val], ids[len(ids) - n_val:]
    if len(train) <= block_size:
        raise DataError(f"block_size={block_size} is larger than the data allows ({len(train)} tokens in the "
                        f"training split of {path})", key="block_size",
                        fix=f"use block_size below {len(train)} or a larger text")
    if len(val) <= block_size:  # not one whole window to evaluate on
        raise DataError(f"the validation split of {path} ({len(val)} tokens, val_fraction={cfg.val_fraction}) is "
                        f"shorter than one window of block_size+1={block_size + 1} tokens", key="val_fraction",
                        fix=f"raise val_fraction, lower block_size below {len(val)}, or use a larger text")
    return TextData(tokenizer, train, val, path)


def sample_batch(data: torch.Tensor, batch_size: int, block_size: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x (B, T) and targets y (B, T) shifted by one. Deterministic per generator state.

    `data` may live on any device; the start offsets are drawn on the generator's device.
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator,
                           device=generator.device)
    offsets = torch.arange(block_size + 1, device=generator.device)
    idx = (starts[:, None] + offsets[None, :]).to(data.device, non_blocking=True)  # (B, T+1)
    window = data[idx]
    return window[:, :-1], window[:, 1:]


def eval_windows(data: torch.Tensor, block_size: int, max_windows: int) -> torch.Tensor:
    """Fixed validation windows: the split tiled by non-overlapping windows (every token once), thinned
    evenly to at most `max_windows`. Returns start offsets (N,), independent of seed and run."""
    n_tiles = (len(data) - 1) // block_size
    starts = torch.arange(n_tiles) * block_size
    if n_tiles > max_windows:
        pick = torch.linspace(0, n_tiles - 1, max_windows).round().long()
        starts = starts[pick]
    return starts


def windows_to_batch(data: torch.Tensor, starts: torch.Tensor,
                     block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = torch.arange(block_size + 1, device=data.device)
    window = data[starts.to(data.device)[:, None] + offsets[None, :]]  # (B, T+1)
    return window[:, :-1], window[:, 1:]
