"""`d2m bench` on the tiny preset: a well-formed table, and a plain loop that does Lightning's maths.

No timing is asserted (timings depend on the machine); the tests check the table's shape and
contents, that W&B got an offline run, and that the plain PyTorch loop and the Lightning Trainer
compute the same losses and end at the same weights from the same seed and batch (for the models
with automatic optimisation; the composition GAN's step has one implementation, run by a Trainer).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ablations.bench import resolve_devices, run_bench
from ablations.bench_cases import CASES, build_module, case_config, epoch_budget, make_batch, select_cases
from ablations.bench_measure import plain_stepper, time_lightning, time_plain
from ablations.bench_report import COLUMNS, NO_CUDA
from common.errors import D2MError

POSITIVE = ["ms_per_step", "samples_per_s", "gflop_per_step", "achieved_gflops",
            "matmul_peak_gflops", "pct_of_peak", "steps_per_epoch", "epochs", "total_steps", "projected_hours",
            "batch_size"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert run_bench(devices=["cpu", "cuda"], preset="tiny", steps=2, out=out) == out
    return out


def test_bench_writes_a_well_formed_table(bench_dir):
    table = pd.read_csv(bench_dir / "bench.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS
    n_devices = 1 + (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert len(table) == len(CASES) * n_devices
    for device, part in table.groupby("device"):
        assert sorted(part["module"]) == sorted(c.key for c in CASES), device
    assert (table["note"] == "").all(), table["note"].tolist()
    for col in POSITIVE:
        values = pd.to_numeric(table[col])
        assert (values > 0).all() and values.map(math.isfinite).all(), col
    assert (pd.to_numeric(table["peak_mem_mb"]) >= 0).all()
    # a plain loop for the models with automatic optimisation; the GAN's step runs in a Trainer only
    plain = pd.to_numeric(table["plain_ms_per_step"])
    automatic = table["family"] != "composition"
    assert (plain[automatic] > 0).all() and plain[~automatic].isna().all()
    assert set(table["precision"]) <= {"fp32", "bf16-mixed"}
    cpu = table[table["device"] == "cpu"]
    if not torch.cuda.is_available():
        assert (cpu["cuda"] == NO_CUDA).all()
        assert set(table["device"]) == {"cpu"}
    else:
        gpu = table[table["device"] != "cpu"]
        assert (pd.to_numeric(gpu["gpu_speedup"]) > 0).all()


def test_bench_markdown_plot_fast_path_and_wandb(bench_dir):
    md = (bench_dir / "bench.md").read_text()
    assert "| module | device | batch | ms/step (Lightning) | ms/step (plain loop) | Lightning overhead |" in md
    assert "projected (h)" in md and "GPU speed-up" in md and "% of matmul peak" in md
    for case in CASES:
        assert f"| {case.label} |" in md
    if not torch.cuda.is_available():
        assert NO_CUDA in md
    assert (bench_dir / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fast = pd.read_csv(bench_dir / "fast_path.csv")
    assert set(fast["model"]) == {"decomposition", "composition"}
    assert (fast["fast_gflop"] < fast["plain_recurrence_gflop"]).all()  # the fast path does less work
    runs = list((bench_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_the_composition_step_has_one_implementation_run_by_a_trainer():
    case = next(c for c in CASES if c.key == "composition")
    cfg = case_config(case, "tiny")
    cpu = torch.device("cpu")
    module = build_module(case, cfg)
    assert plain_stepper(module, case.family, cpu) is None  # no second step loop
    lit = time_lightning(module, make_batch(case, cfg, cpu, seed=3), cpu, steps=2, warmup=0, seed=5)
    assert len(lit.step_ms) == 2 and lit.losses[-1] is not None  # two batches, each all three players' steps
    assert module.batches_stepped == 2


@pytest.mark.parametrize("key", ["style-original", "style-improved", "decomposition", "decomposition-cosine"])
def test_plain_loop_and_lightning_compute_the_same_step(key):
    case = next(c for c in CASES if c.key == key.removesuffix("-cosine"))
    cfg = case_config(case, "tiny")
    if key.endswith("-cosine"):  # a per-step schedule (the small preset's): the rate doubles after step 0
        cfg.decomposition.optim.update(lr_schedule="cosine", lr_warmup_steps=2, max_steps=10)
    cpu = torch.device("cpu")
    batch = make_batch(case, cfg, cpu, seed=3)
    torch.manual_seed(3)
    plain_module = build_module(case, cfg).train()
    plain = time_plain(plain_stepper(plain_module, case.family, cpu), batch, cpu, steps=2, warmup=0, seed=5)
    torch.manual_seed(3)
    lit_module = build_module(case, cfg)
    lit = time_lightning(lit_module, batch, cpu, steps=2, warmup=0, seed=5)
    assert len(plain.losses) == len(lit.losses) == 2
    assert lit.losses[-1] is not None
    assert lit.losses[0] == pytest.approx(plain.losses[0], rel=1e-5)
    assert lit.losses[-1] == pytest.approx(plain.losses[-1], rel=1e-5)
    lit_state = lit_module.state_dict()
    for name, value in plain_module.state_dict().items():
        torch.testing.assert_close(lit_state[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_cases_devices_and_budgets():
    assert [c.key for c in select_cases(["composition"])] == ["composition"]
    assert len(select_cases(["composition*"])) == 6
    assert [c.key for c in select_cases(["style"])] == ["style-original", "style-improved"]
    assert [c.key for c in select_cases(["decomposition-plain-recurrence"])] == ["decomposition-plain-recurrence"]
    with pytest.raises(D2MError, match="unknown bench module"):
        select_cases(["transformer"])
    with pytest.raises(D2MError, match="unknown bench device"):
        resolve_devices(["tpu"])
    devices, status = resolve_devices(["cuda"])
    assert devices[0].type == "cpu"  # the CPU is always measured
    if not torch.cuda.is_available():
        assert devices == [torch.device("cpu")] and status == NO_CUDA
    paper = case_config(CASES[4], "paper")
    budget = epoch_budget(CASES[4], paper)
    # the paper's budget: batch 256, 1500 composition epochs, 1000 decomposition epochs
    assert budget.epochs == 1500 and budget.total_steps == 1500 * budget.steps_per_epoch
    assert make_batch(CASES[4], paper, "cpu")["poses"].shape == (256, 3, 32, 28)
    decomposition = next(c for c in CASES if c.key == "decomposition")
    assert epoch_budget(decomposition, case_config(decomposition, "paper")).epochs == 1000
    improved = case_config(next(c for c in CASES if c.key == "style-improved"), "paper").style
    assert (improved.hidden, improved.layers, improved.window) == (512, 2, 150)


def test_a_wandb_failure_does_not_lose_the_files(tmp_path, monkeypatch, capsys):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken)
    out = run_bench(devices=["cpu"], preset="tiny", steps=1, out=tmp_path / "bench", modules=["style-original"])
    table = pd.read_csv(out / "bench.csv", keep_default_na=False)
    assert list(table["module"]) == ["style-original"] and (table["cuda"] == "not requested").all()
    assert (out / "bench.md").exists()
    assert "W&B logging failed" in capsys.readouterr().err
