"""Runs written by `gptlab sweep` are reported on the sweep file's own metric, goal and description."""
import yaml

from gptlab.frames.load import load_store


def test_sweep_file_sets_what_the_report_compares(tmp_path):
    exp = tmp_path / "runs" / "lrs"
    (exp / "lr=0.01-seed0").mkdir(parents=True)
    (exp / "sweep.yaml").write_text(yaml.safe_dump({"name": "lrs", "description": "How low can lr go?",
                                                    "method": "grid",
                                                    "metric": {"name": "final_val_loss", "goal": "minimize"}}))
    (exp / "lr=0.01-seed0" / "summary.json").write_text('{"status": "finished", "final_val_loss": 2.5}')
    store = load_store(tmp_path / "runs")
    spec = store.specs["lrs"]
    assert spec["description"] == "How low can lr go?"
    assert spec["compare"] == {"metric": "final_val_loss", "goal": "minimize"}
