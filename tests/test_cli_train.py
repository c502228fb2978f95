"""The train and generate commands as a user runs them: real subprocesses."""
import json


from tests.conftest import cli, tiny_args


def test_cli_train_writes_a_finished_run(tmp_path):
    out = cli("train", *tiny_args(), "--runs", str(tmp_path), "--wandb", "disabled")
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "adhoc").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("n_layer=1-n_head=2")
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert "finished:" in out.stdout


def test_cli_diverged_run_exits_1(tmp_path):
    out = cli("train", *tiny_args(lr=1e4, grad_clip=0), "--runs", str(tmp_path), "--name", "boom",
              "--wandb", "disabled")
    assert out.returncode == 1
    assert json.loads((tmp_path / "adhoc" / "boom" / "summary.json").read_text())["status"] == "diverged"


def test_python_dash_m_and_config_file(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {n_layer: 1, n_embd: 16, n_head: 2, block_size: 16}\n"
                      "train: {max_steps: 10, batch_size: 4, eval_interval: 10, eval_steps: 1}\n")
    out = cli("train", str(config), "--lr=2e-3", "--runs", str(tmp_path), "--wandb", "disabled")
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "adhoc" / "tiny-lr=0.002"
    assert (run_dir / "summary.json").exists()


def test_generate_is_reproducible_and_top_k_1_is_greedy(trained_run):
    a = cli("generate", str(trained_run), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "7")
    b = cli("generate", str(trained_run), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "7")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("ROMEO:") and len(a.stdout.strip()) >= 40
    greedy = cli("generate", str(trained_run), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--temperature", "0")
    top1 = cli("generate", str(trained_run), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--top-k", "1",
               "--seed", "3")
    assert greedy.stdout == top1.stdout


def test_wandb_offline_writes_a_real_offline_run(tmp_path):
    out = cli("train", *tiny_args(), "--runs", str(tmp_path), "--name", "w", "--wandb", "offline")
    assert out.returncode == 0, out.stderr
    offline = list((tmp_path / "adhoc" / "w" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
