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


def test_ctrl_c_stops_at_a_step_boundary_and_resume_matches_an_uninterrupted_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import tiny_args

    args = tiny_args(max_steps=400, eval_interval=100)
    straight = cli("train", *args, "--runs", str(tmp_path), "--name", "straight", "--wandb", "disabled")
    assert straight.returncode == 0, straight.stderr
    run_dir = tmp_path / "adhoc" / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "train", *args, "--runs", str(tmp_path), "--name",
                             "cut", "--wandb", "disabled"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "metrics.jsonl").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) > 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    interrupted = json.loads((run_dir / "summary.json").read_text())
    assert interrupted["status"] == "interrupted" and 0 < interrupted["steps"] < 400
    resumed = cli("train", *args, "--runs", str(tmp_path), "--name", "cut", "--wandb", "disabled")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "adhoc" / "straight" / "summary.json").read_text())
    b = json.loads((run_dir / "summary.json").read_text())
    assert b["status"] == "finished" and b["final_val_loss"] == a["final_val_loss"]


def test_a_finished_run_with_another_config_is_refused(tmp_path):
    assert cli("train", *tiny_args(), "--runs", str(tmp_path), "--name", "r", "--wandb", "disabled").returncode == 0
    out = cli("train", *tiny_args(max_steps=20), "--runs", str(tmp_path), "--name", "r", "--wandb", "disabled")
    assert out.returncode == 2 and "different config" in out.stderr and "max_steps: 30 -> 20" in out.stderr
