"""An offline W&B run records config, group, job type, tags and summary, with no network or account."""

import os
import time

from wandb_offline import find_offline_runs, read_offline_run, read_when_written

from experiments.config import load_config
from experiments.loggers import finish_loggers, log_evaluation_run, log_summary, make_loggers, run_tags
from experiments.rundir import run_name


def test_offline_run_records_config_group_tags_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # nothing may be written outside the stage folder
    cfg = load_config("tiny", ["logging.wandb=true", "group=g-test", "composition.losses.kl.enabled=false"])
    loggers = make_loggers(cfg, "composition", tmp_path / "stage", "cell-s0")
    try:
        for lg in loggers:
            lg.log_metrics({"train/loss": 0.25}, step=1)
        log_summary(loggers, {"test/acc": 0.75, "timing/ms_per_step": 12.5})
    finally:
        finish_loggers(loggers)
    files = find_offline_runs(tmp_path / "stage")
    assert len(files) == 1
    run = read_offline_run(files[0])
    deadline = time.time() + 20  # W&B's service process may still be flushing under load
    while "project" not in run and time.time() < deadline:
        time.sleep(0.5)
        run = read_offline_run(files[0])
    assert run["project"] == "d2m-lab"
    assert run["group"] == "g-test"
    assert run["job_type"] == "composition"
    assert run["name"] == "cell-s0/composition"
    assert "no-kl" in run["tags"] and set(run["tags"]) == set(run_tags(cfg))
    assert run["config"]["composition"]["losses"]["kl"]["enabled"] is False
    assert run["config"]["decomposition"]["hidden"] == cfg.decomposition.hidden
    assert run["summary"]["test/acc"] == 0.75
    assert run["summary"]["timing/ms_per_step"] == 12.5
    assert run["summary"]["train/loss"] == 0.25
    assert (tmp_path / "stage" / "csv" / "metrics.csv").is_file()
    assert os.environ["WANDB_MODE"] == "offline"


def test_wandb_can_be_switched_off(tmp_path):
    cfg = load_config("tiny", ["logging.wandb=false"])
    loggers = make_loggers(cfg, "style", tmp_path, "x")
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    finish_loggers(loggers)
    assert find_offline_runs(tmp_path) == []


def test_evaluation_run_holds_the_metrics_in_its_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = load_config("tiny", ["logging.wandb=true", "group=g-eval",
                               "composition.losses.style_alignment.enabled=false"])
    metrics = {"evaluation/fid": 4.5, "reference/fid": 1.25, "control/static/fid": 9.0, "style/test/acc": 80.0}
    log_evaluation_run(cfg, tmp_path / "run", metrics)
    files = find_offline_runs(tmp_path / "run" / "wandb")
    assert len(files) == 1
    run = read_when_written(files[0], metrics)
    assert (run["job_type"], run["group"], run["name"]) == ("evaluation", "g-eval", f"{run_name(cfg)}/evaluation")
    assert set(run["tags"]) == set(run_tags(cfg)) and "no-style_alignment" in run["tags"]
    assert {k: run["summary"].get(k) for k in metrics} == metrics
    assert run["config"]["composition"]["losses"]["style_alignment"]["enabled"] is False
    log_evaluation_run(load_config("tiny"), tmp_path / "off", metrics)  # the tiny preset logs nothing
    assert find_offline_runs(tmp_path / "off") == []
