"""Data: char tokenizer, 90/10 split, deterministic random batches, fixed eval windows."""
import math

import pytest
import torch

from gptlab.config import DataConfig
from gptlab.dataset import eval_windows, load_data, sample_batch
from gptlab.errors import DataError


@pytest.fixture(scope="module")
def shakespeare():
    return load_data(DataConfig(), block_size=64)


def test_tiny_shakespeare_ships_with_65_characters(shakespeare):
    assert shakespeare.tokenizer.vocab_size == 65
    n = len(shakespeare.train) + len(shakespeare.val)
    assert len(shakespeare.val) == int(n * 0.1)
    text = "First Citizen"
    assert shakespeare.tokenizer.decode(shakespeare.tokenizer.encode(text)) == text


def test_batches_are_shifted_windows_and_deterministic_per_seed(shakespeare):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x1, y1 = sample_batch(shakespeare.train, 4, 16, g1)
    x2, y2 = sample_batch(shakespeare.train, 4, 16, g2)
    assert x1.shape == (4, 16) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    x3, _ = sample_batch(shakespeare.train, 4, 16, torch.Generator().manual_seed(4))
    assert not torch.equal(x1, x3)


def test_eval_windows_are_fixed_tiles_capped_by_the_split(shakespeare):
    starts = eval_windows(shakespeare.val, 64, max_windows=10_000)
    assert len(starts) == (len(shakespeare.val) - 1) // 64  # the whole split, each token once
    assert torch.equal(starts[:3], torch.tensor([0, 64, 128]))
    few = eval_windows(shakespeare.val, 64, max_windows=10)
    assert len(few) == 10 and torch.equal(few, eval_windows(shakespeare.val, 64, max_windows=10))


def test_other_text_files_work(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_text("abcab" * 100)
    data = load_data(DataConfig(path=str(path)), block_size=8)
    assert data.tokenizer.vocab_size == 3


@pytest.mark.parametrize("content,match", [(None, "not found"), ("", "empty"), ("ab", "larger than the data")])
def test_bad_data_files_are_user_errors(tmp_path, content, match):
    path = tmp_path / "d.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_data(DataConfig(path=str(path)), block_size=8)


def test_unigram_entropy_is_the_baseline_to_beat(shakespeare):
    counts = torch.bincount(shakespeare.train, minlength=65).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    assert 3.2 < entropy < 3.4 < math.log(65)
