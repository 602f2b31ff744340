"""The measuring instruments of `d2m bench`: step clocks, peak memory, FLOP counts, the matmul peak.

A training step is timed two ways with the same batch, seed and maths:

- through a Lightning `Trainer` running the real `training_step` (with Lightning's loop, hooks,
  logging calls, precision plugin and, for automatic optimisation, its gradient clipping), and
- as a plain PyTorch loop (forward, losses, backward, clipping, optimiser step) for the models with
  automatic optimisation,

so the difference between the two is Lightning's overhead and nothing else. The composition GAN's
step (manual optimisation, toggled optimisers) runs only inside a Trainer, so it has no plain loop:
there is one implementation of it, and the bench times that one. Both read the clock at
the start of every step (after a device synchronisation, so asynchronous GPU work is not
under-counted) and reseed the global generator there, so the sampled codes, noise and frames of step
i are the same in both loops and their losses and weights can be compared.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common.errors import D2MError

__all__ = ["PeakMemory", "Timed", "any_stepper", "compile_networks", "count_flops", "matmul_peak", "plain_stepper",
           "synchronize", "time_lightning", "time_plain", "trainer_stepper"]

StepFn = Callable[[Mapping[str, torch.Tensor], int], "torch.Tensor | None"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; CPU steps stay fp32 (the table says which precision ran)."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lightning_precision(device: torch.device, precision: str) -> str:
    return "bf16-mixed" if precision == "bf16" and device.type == "cuda" else "32-true"


@dataclass
class Timed:
    """Per-step wall times (ms) of one loop, the losses it produced, and the warm-up steps to drop."""

    step_ms: list[float]
    warmup: int
    losses: list[float | None] = field(default_factory=list)

    @property
    def timed(self) -> list[float]:
        return self.step_ms[self.warmup:] or self.step_ms

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.timed)) if self.timed else float("nan")


def _intervals(stamps: list[float]) -> list[float]:
    return [1000.0 * (b - a) for a, b in zip(stamps, stamps[1:])]


def _as_float(x) -> float | None:
    if x is None:
        return None
    return float(x.detach().float().cpu()) if isinstance(x, torch.Tensor) else float(x)


# -- the plain PyTorch loop -------------------------------------------------------------------------------
def plain_stepper(module, family: str, device: torch.device, precision: str = "fp32") -> StepFn | None:
    """One training step of `module` without Lightning, as a function of (batch, iteration) -> loss.

    The style extractor and the decomposition VAE run their own `training_step` (its `self.log`
    calls are no-ops without a Trainer) and then what Lightning's automatic optimisation does:
    backward, the module's gradient clipping, one Adam step. None for a module with manual
    optimisation (the composition GAN), whose step exists only inside a Trainer.
    """
    if not module.automatic_optimization:
        return None
    ac = autocast(device, precision)
    opt, schedule = _optimiser_and_schedule(module.configure_optimizers())
    clip = float(module.cfg.optim.grad_clip)
    params = [p for g in opt.param_groups for p in g["params"]]

    def automatic_step(batch, it):
        with ac, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "self.log without a Trainer": expected here
            loss = module.training_step(batch, it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if hasattr(module, "clip_step_gradients"):  # the module's own clipping (per network or joint)
            module.clip_step_gradients()
        elif clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if schedule is not None:  # a per-step schedule, as Lightning steps it after the optimiser
            schedule.step()
        return loss.detach()

    return automatic_step


def _optimiser_and_schedule(configured):
    """The optimiser and the per-step scheduler (or None) from what `configure_optimizers` returned:
    an optimiser, or Lightning's dict with its `lr_scheduler` entry (a learning-rate schedule)."""
    if not isinstance(configured, dict):
        return configured, None
    entry = configured.get("lr_scheduler")
    if entry is not None and entry.get("interval", "epoch") != "step":
        raise D2MError("bench: only per-step learning-rate schedules can be timed in a plain loop")
    return configured["optimizer"], None if entry is None else entry["scheduler"]


def time_plain(step: StepFn, batch: Mapping[str, torch.Tensor], device: torch.device, steps: int, warmup: int,
               seed: int = 0) -> Timed:
    """Run warm-up plus timed steps of a plain loop; returns per-step milliseconds and losses."""
    stamps: list[float] = []
    losses: list[torch.Tensor | None] = []
    for i in range(warmup + steps):
        synchronize(device)
        stamps.append(time.perf_counter())
        torch.manual_seed(seed + i)
        losses.append(step(batch, i))
    synchronize(device)
    stamps.append(time.perf_counter())
    return Timed(_intervals(stamps), warmup, [_as_float(x) for x in losses])


# -- the Lightning Trainer --------------------------------------------------------------------------------
class _SameBatch(torch.utils.data.Dataset):
    """Yields one preloaded batch again and again: no file reads, no collation, no host-device copy.

    With `batch_size=None` the DataLoader hands the dict through as it is, and Lightning's transfer
    to the device is a no-op for tensors already there.
    """

    def __init__(self, batch: Mapping[str, torch.Tensor], n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.batch


class _StepClock:
    """Lightning callback (built lazily so importing this file does not import Lightning)."""

    @staticmethod
    def make(device: torch.device, seed: int):
        import pytorch_lightning as pl

        class StepClock(pl.Callback):
            def __init__(self):
                self.stamps: list[float] = []
                self.losses: list[torch.Tensor | None] = []

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                synchronize(device)
                self.stamps.append(time.perf_counter())
                torch.manual_seed(seed + batch_idx)

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
                self.losses.append(loss.detach() if isinstance(loss, torch.Tensor) else None)

            def on_train_end(self, trainer, pl_module):
                synchronize(device)
                self.stamps.append(time.perf_counter())

        return StepClock()


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up banner and its advice about data-loader workers (irrelevant here)."""
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def time_lightning(module, batch: Mapping[str, torch.Tensor], device: torch.device, steps: int, warmup: int,
                   precision: str = "fp32", seed: int = 0) -> Timed:
    """`trainer.fit` for warm-up plus timed steps on the preloaded batch; the real training step.

    The Trainer is set up as the experiment stages set it up (gradient clipping for automatic
    optimisation, precision) with loggers and checkpoints off, so the time is the step's and the
    loop's, not a file writer's. The generator loss of the composition GAN, which returns nothing
    from its manual step, is read from what it logged.
    """
    import pytorch_lightning as pl

    n = warmup + steps
    clip = float(module.cfg.optim.grad_clip)
    manual = not module.automatic_optimization
    per_batch = int(getattr(module, "optimizer_steps_per_batch", 1))  # Lightning counts every optimiser step
    clock = _StepClock.make(device, seed)
    loader = torch.utils.data.DataLoader(_SameBatch(batch, n), batch_size=None, shuffle=False, num_workers=0)
    with _quiet_lightning(), tempfile.TemporaryDirectory(prefix="d2m-bench-") as root:
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            precision=lightning_precision(device, precision),
            max_steps=n * per_batch, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
            gradient_clip_val=None if manual or clip <= 0 else clip,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[clock], default_root_dir=root, deterministic=False,
        )
        trainer.fit(module, train_dataloaders=loader)
    losses = [_as_float(x) for x in clock.losses]
    if manual and losses:
        losses[-1] = _as_float(trainer.callback_metrics.get("train/loss"))
    return Timed(_intervals(clock.stamps), warmup, losses)


def trainer_stepper(module, device: torch.device, precision: str = "fp32", seed: int = 0) -> StepFn:
    """One training step of `module` through a Trainer per call, as a (batch, iteration) step function.

    For counting a step's work (FLOPs) of a module with manual optimisation, whose step exists only
    inside a Trainer; each call also pays the Trainer's start, so time such modules with `time_lightning`.
    """

    def step(batch, it):
        time_lightning(module, batch, device, steps=1, warmup=0, precision=precision, seed=seed + it)

    return step


def any_stepper(module, family: str, device: torch.device, precision: str = "fp32", seed: int = 0) -> StepFn:
    """The plain step where the module has one, else one Trainer step per call."""
    return plain_stepper(module, family, device, precision) or trainer_stepper(module, device, precision, seed)


def compile_networks(module, family: str) -> None:
    """`torch.compile` every trained network in place (parameter names and optimisers are unchanged)."""
    nets = [module.net] if family == "style" else list(module.model.networks.values())
    for net in nets:
        net.compile()


# -- work and limits --------------------------------------------------------------------------------------
def count_flops(step: StepFn, batch: Mapping[str, torch.Tensor]) -> int:
    """Floating-point operations of one training step as FlopCounterMode counts them.

    It counts matrix products (mm, addmm, bmm, convolutions, attention) in the forward and backward
    passes; element-wise work and the optimiser's arithmetic are not counted, so the achieved rate
    next to the matmul peak is a fair "how close to the limit" for these matmul-bound networks.
    """
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        step(batch, 0)
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                reps: int | None = None) -> float:
    """This device's measured FLOP/s on a large square matrix product (the best of several runs)."""
    cuda = device.type == "cuda"
    n = n or (8192 if cuda else 2048)
    reps = reps or (20 if cuda else 4)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    for _ in range(2 if cuda else 1):
        a @ b
    synchronize(device)
    best = float("inf")
    if cuda:  # one product is too short to time alone on a GPU: time a burst
        burst = 10
        for _ in range(max(1, reps // burst)):
            t0 = time.perf_counter()
            for _ in range(burst):
                a @ b
            synchronize(device)
            best = min(best, (time.perf_counter() - t0) / burst)
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


# -- peak memory -------------------------------------------------------------------------------------------
def _proc_status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset this process's peak resident size (Linux: writing 5 to clear_refs); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_kb("VmHWM") is not None


def _release_free_memory() -> None:
    """Give freed heap back to the system, so the next baseline is what is really in use."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory (bytes) that the code inside the `with` added on top of what was in use before.

    CUDA: `torch.cuda.max_memory_allocated` above the allocation at entry. CPU: the resident-set
    peak above the resident set at entry; the peak is reset at entry where Linux allows it, else
    the process's lifetime peak is used, which shows only growth beyond every earlier peak (the
    table then says so).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = float("nan")
        self.method = ""

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated"
        elif _reset_rss_peak():
            self._base = 1024 * (_proc_status_kb("VmRSS") or 0)
            self.method = "peak RSS (reset at start)"
        else:
            self._base = 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.method = "growth of lifetime peak RSS"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.method.startswith("peak RSS"):
            peak = 1024 * (_proc_status_kb("VmHWM") or 0)
        else:
            peak = 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_bytes = float(max(0, peak - self._base))

