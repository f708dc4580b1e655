"""zoo's training loop side by side with a hand-written PyTorch loop: same model, batch, precision and data.

    python benchmarks/side_by_side.py --out benchmarks/results/side_by_side_cpu.jsonl [--cases ...] [--smoke]

For each case (a recipe plus overrides), every round trains twice from the same seed, in this one process:

* **zoo**: the recipe as ``zoo fit`` builds it (task, data module, trainer, the recipe's callbacks and zoo's
  default ones: TensorBoard logger, progress bar, learning-rate monitor, non-finite-loss guard, checkpointing,
  checkpoint metadata), validation off, ``trainer.fit``;
* **plain**: the same network, optimizer settings, precision, memory format, compilation and batches (the data
  module's own ``train_dataloader`` and transfer hooks: same decoding, augmentation and workers, or the same
  on-device batches) in a ``for`` loop that a user would write: forward, loss, backward, optional clipping,
  step, warm-up-cosine learning rate, and an EMA with ``torch.optim.swa_utils.AveragedModel`` when the recipe
  has one.

Training samples per second are timed over ``steps`` optimizer steps after ``warmup`` steps (the device is
synchronised at both ends), the two sides alternate which goes first from round to round, and the ratio of the
medians (zoo / plain; 1.0 means no overhead) is printed and appended as one JSON record per case to ``--out``,
with the overhead per step and, on a GPU, the model-FLOPs utilisation of both sides against the H100's dense
bf16 peak. Both sides read the same data pipeline on purpose: the ratio measures the training loop
(Lightning's Trainer, the zoo task's step with its metrics and logging, the callbacks), not the data.

``--process`` times what a command-line user waits for instead: both sides as whole fresh processes, from
start to exit, imports, data loading, validation every epoch, model selection and the final test included:
``zoo fit --config RECIPE`` against the script a user of that family's library would write
(``benchmarks/plain/``: PyG's example loop for the Cora GCN and GAT). One warm-up round of each fills the
data caches; then the sides alternate, and the record holds the medians and both test accuracies.

Cases: ``cifar10-cnn``, ``quickstart-cnn``, ``shakespeare-gpt``, ``cora-gcn``, ``cora-gat`` and
``shapes-ddpm`` (the CPU recipes of every family), and for the GPU ``resnet50-224`` (timm
ResNet-50, 224 px, batch 256, bf16, channels-last; ``-compiled`` adds ``torch.compile``), ``gpt2-124m``
(16 x 1024 tokens, bf16), ``ddpm-unet`` (the CIFAR-10 DDPM recipe, images on the device) and
``gcn-large-graph`` (a full-batch epoch on 200k nodes and 4M edges); synthetic data comes from
:mod:`zoo.data.synthetic`. ``--smoke`` shrinks any case to seconds on a CPU.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import PlainLoop, synchronize
from recipe_accuracy import measured_here, write_record
from typing_extensions import override

from zoo.data.paths import data_root
from zoo.leaderboard.run import training_flops_per_sample
from zoo.lightning_cli import ZooLightningCLI

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One side-by-side comparison.

    Attributes:
        recipe: The recipe, relative to the repository.
        kind: The plain loop's loss: ``"image"`` (cross-entropy with the task's label smoothing), ``"lm"``
            (next-token cross-entropy), ``"diffusion"`` (noise-prediction MSE at uniform timesteps) or ``"node"``
            (cross-entropy on the training nodes of a full graph).
        steps: Optimizer steps timed.
        warmup: Steps before the timing starts (compilation, allocator and cache warm-up).
        overrides: ``zoo fit`` arguments added to the recipe.
        gpu: A case for the GPU; run by default only where CUDA is available.
        smoke: Overrides that shrink the case to seconds on a CPU, for ``--smoke``.
        plain_process: For ``--process``: the hand-written script (relative to the repository) and its arguments;
            ``{data}`` stands for a writable copy of the data it reads.
        process_data: For ``--process``: the folder under ``$ZOO_DATA`` that script reads, and where under
            ``{data}`` its copy goes.
        smoke_process: Arguments added to each side in ``--process --smoke`` (zoo's, then the script's).
    """

    recipe: str
    kind: str
    steps: int
    warmup: int
    overrides: tuple[str, ...] = ()
    gpu: bool = False
    smoke: tuple[str, ...] = ()
    plain_process: tuple[str, ...] = ()
    process_data: tuple[str, str] = ("", "")
    smoke_process: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


_SMALL_IMAGES = ("--data.init_args.image_size", "32", "--data.init_args.num_images", "16",
                 "--data.init_args.batch_size", "4", "--trainer.precision", "32-true")  # fmt: skip
CASES = {
    "cifar10-cnn": Case(
        "recipes/cifar10/speedrun_net_tiny.yaml", "image", steps=30, warmup=5,
        smoke=("--data.init_args.variant", "mini", "--data.init_args.batch_size", "32"),
    ),
    "quickstart-cnn": Case("recipes/quickstart.yaml", "image", steps=30, warmup=5,
                           smoke=("--data.init_args.batch_size", "32")),
    "shakespeare-gpt": Case("recipes/shakespeare/gpt_nano.yaml", "lm", steps=200, warmup=20),
    "cora-gcn": Case(
        "recipes/cora/gcn.yaml", "node", steps=100, warmup=10,
        plain_process=("benchmarks/plain/pyg_planetoid.py", "--model", "gcn", "--data", "{data}"),
        process_data=("planetoid/Cora/raw", "Cora/raw"),
        smoke_process=(("--trainer.max_epochs", "3"), ("--epochs", "3")),
    ),
    "cora-gat": Case(
        "recipes/cora/gat.yaml", "node", steps=100, warmup=10,
        plain_process=("benchmarks/plain/pyg_planetoid.py", "--model", "gat", "--data", "{data}"),
        process_data=("planetoid/Cora/raw", "Cora/raw"),
        smoke_process=(("--trainer.max_epochs", "3"), ("--epochs", "3")),
    ),
    "shapes-ddpm": Case("recipes/shapes/ddpm_tiny.yaml", "diffusion", steps=30, warmup=5,
                        smoke=("--data.init_args.batch_size", "8")),
    "resnet50-224": Case("benchmarks/recipes/resnet50_synthetic.yaml", "image", steps=50, warmup=10, gpu=True,
                         smoke=_SMALL_IMAGES),
    "resnet50-224-compiled": Case(
        "benchmarks/recipes/resnet50_synthetic.yaml", "image", steps=50, warmup=20, gpu=True,
        overrides=("--model.init_args.compile", "true"), smoke=_SMALL_IMAGES,
    ),
    "gpt2-124m": Case(
        "benchmarks/recipes/gpt2_124m_synthetic.yaml", "lm", steps=50, warmup=10, gpu=True,
        smoke=("--model.init_args.backbone", "gpt_nano", "--data.init_args.vocab_size", "256",
               "--data.init_args.block_size", "32", "--data.init_args.num_tokens", "2048",
               "--data.init_args.batch_size", "4", "--trainer.precision", "32-true"),
    ),
    "ddpm-unet": Case(
        "recipes/cifar10/ddpm.yaml", "diffusion", steps=50, warmup=10, gpu=True,
        overrides=("--data.init_args.on_device", "true"),
        smoke=("--model.init_args.backbone", "unet_tiny", "--data.init_args.variant", "mini",
               "--data.init_args.batch_size", "4", "--trainer.precision", "32-true",
               "--model.init_args.channels_last", "false"),
    ),
    "gcn-large-graph": Case(
        "benchmarks/recipes/gcn_synthetic.yaml", "node", steps=20, warmup=5, gpu=True,
        smoke=("--data.init_args.num_nodes", "500", "--data.init_args.num_edges", "2000"),
    ),
}  # fmt: skip
H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM, the denominator of model-FLOPs utilisation


class StepWindowTimer(L.Callback):
    """Seconds and samples over optimizer steps ``warmup`` to ``warmup + steps`` of ``trainer.fit``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.started: float | None = None
        self.seconds: float | None = None
        self.samples: int | torch.Tensor = 0

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.started is None and trainer.global_step == self.warmup:
            synchronize(pl_module.device)
            self.started = time.perf_counter()

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.started is None or self.seconds is not None:
            return
        self.samples += pl_module.count_samples(batch)  # a device tensor for a graph: read once, after the window
        if trainer.global_step == self.warmup + self.steps:
            synchronize(pl_module.device)
            self.seconds = time.perf_counter() - self.started


def _build(case: Case, folder: Path, smoke: bool) -> ZooLightningCLI:
    """The recipe's task, data module and trainer, as ``zoo fit`` builds them, with validation off."""
    args = [
        "--config", str(REPO / case.recipe),
        "--trainer.max_steps", str(case.warmup + case.steps),
        "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.logger.init_args.save_dir", str(folder),
        *case.overrides,
        *(case.smoke if smoke else ()),
    ]  # fmt: skip
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI must not read this script's own arguments
    try:
        return ZooLightningCLI(args=args, run=False)
    finally:
        sys.argv = argv


def run_zoo(case: Case, folder: Path, smoke: bool = False) -> tuple[float, int, int | None]:
    """Samples per second, batch size and training FLOPs per sample of the recipe through ``trainer.fit``."""
    cli = _build(case, folder, smoke)
    timer = StepWindowTimer(case.warmup, case.steps)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if timer.seconds is None:
        raise RuntimeError(f"{case.recipe}: fit stopped before step {case.warmup + case.steps}")
    samples = int(timer.samples)
    return samples / timer.seconds, samples // case.steps, training_flops_per_sample(cli.model, cli.datamodule)


def run_plain(case: Case, folder: Path, smoke: bool = False) -> tuple[float, int]:
    """Samples per second and batch size of the same network, settings and batches in a hand-written loop."""
    total = case.warmup + case.steps
    loop = PlainLoop(_build(case, folder, smoke), case.kind, total)
    started, samples = 0.0, 0
    for step, batch in enumerate(loop.batches()):
        if step == case.warmup:
            synchronize(loop.device)
            started, samples = time.perf_counter(), 0
        samples += loop.step(batch)
        if step + 1 == total:
            synchronize(loop.device)
            seconds = time.perf_counter() - started
            return int(samples) / seconds, int(samples) // case.steps
    raise AssertionError("unreachable: batches() never ends")


def compare(name: str, case: Case, rounds: int, smoke: bool = False) -> dict[str, Any]:
    """Alternate zoo and plain runs of ``case`` for ``rounds`` rounds and build the record."""
    per_round: dict[str, list[float]] = {"zoo": [], "plain": []}
    batch, flops = 0, None
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            order = ("zoo", "plain") if index % 2 == 0 else ("plain", "zoo")
            for side in order:
                L.seed_everything(0, verbose=False)
                folder = Path(tmp) / f"{side}{index}"
                if side == "zoo":
                    rate, batch, flops = run_zoo(case, folder, smoke)
                else:
                    rate, batch = run_plain(case, folder, smoke)
                per_round[side].append(round(rate, 2))
                print(f"{name:<22} round {index + 1}/{rounds} {side:<5} {rate:12.1f} samples/s", flush=True)
    medians = {side: statistics.median(rates) for side, rates in per_round.items()}
    step_ms = {side: 1000 * batch / rate for side, rate in medians.items()}
    record = {
        "benchmark": "side_by_side",
        "case": name,
        "recipe": case.recipe,
        "overrides": [*case.overrides, *(case.smoke if smoke else ())],
        "steps": case.steps,
        "warmup_steps": case.warmup,
        "rounds": rounds,
        "batch_size": batch,
        "samples_per_second": {side: round(rate, 2) for side, rate in medians.items()},
        "step_ms": {side: round(ms, 3) for side, ms in step_ms.items()},
        "overhead_ms_per_step": round(step_ms["zoo"] - step_ms["plain"], 3),
        "per_round": per_round,
        "zoo_over_plain": round(medians["zoo"] / medians["plain"], 3),
        "train_flops_per_sample": flops,
    }
    if flops and torch.cuda.is_available():
        record["mfu_vs_h100_bf16"] = {s: round(r * flops / (H100_BF16_TFLOPS * 1e12), 4) for s, r in medians.items()}
    return record | measured_here("side_by_side.py")


def _zoo_process(case: Case, smoke: bool) -> list[str]:
    extra = case.smoke_process[0] if smoke else ()
    return [sys.executable, "-m", "zoo", "fit", "--config", str(REPO / case.recipe), *case.overrides, *extra]


def _plain_process(case: Case, data: Path, smoke: bool) -> list[str]:
    script, *args = (arg.replace("{data}", str(data)) for arg in case.plain_process)
    return [sys.executable, str(REPO / script), *args, *(case.smoke_process[1] if smoke else ())]


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds of ``command`` as a fresh process, and the test accuracy it reported."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr[-3000:]}")
    found = re.search(r"test/acc1\s+([0-9.]+)", done.stdout) or re.search(r'"test_acc1": ([0-9.]+)', done.stdout)
    if found is None:
        raise RuntimeError(f"{' '.join(command)} reported no test accuracy:\n{done.stdout[-2000:]}")
    return seconds, float(found.group(1))


def compare_processes(name: str, case: Case, rounds: int, smoke: bool = False) -> dict[str, Any]:
    """Time ``zoo fit`` and the hand-written script as whole processes, alternating, after a warm-up round."""
    if not case.plain_process:
        raise SystemExit(f"case {name} has no hand-written script for --process; cases that do: {_process_cases()}")
    per_round: dict[str, list[float]] = {"zoo": [], "plain": []}
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        source, copy = case.process_data
        shutil.copytree(data_root() / source, data / copy)
        commands = {"zoo": _zoo_process(case, smoke), "plain": _plain_process(case, data, smoke)}
        for command in () if smoke else commands.values():  # warm-up: PyG processes the raw files, zoo caches
            _timed(command, work)
        for index in range(rounds):
            for side in ("zoo", "plain") if index % 2 == 0 else ("plain", "zoo"):
                seconds, accuracy[side] = _timed(commands[side], work)
                per_round[side].append(round(seconds, 2))
                print(f"{name:<22} round {index + 1}/{rounds} {side:<5} {seconds:8.2f} s", flush=True)
    medians = {side: statistics.median(times) for side, times in per_round.items()}
    return {
        "benchmark": "side_by_side_process",
        "case": name,
        "recipe": case.recipe,
        "commands": {side: " ".join(c) for side, c in commands.items()},
        "rounds": rounds,
        "seconds": {side: round(t, 2) for side, t in medians.items()},
        "per_round": per_round,
        "plain_over_zoo": round(medians["plain"] / medians["zoo"], 3),  # above 1: zoo finishes first
        "test_acc1": accuracy,
        **measured_here("side_by_side.py"),
    }


def _process_cases() -> list[str]:
    return [name for name, case in CASES.items() if case.plain_process]


def main() -> None:
    """Run the chosen cases and print (and append) one record each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--cases", nargs="*", choices=sorted(CASES), default=None,
        help="default: the CPU cases, and the GPU ones where CUDA is available",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps, one round (for CI, on CPU)")
    parser.add_argument("--process", action="store_true", help="time both sides as whole fresh processes")
    args = parser.parse_args()
    if args.process:
        for name in args.cases or _process_cases():
            record = compare_processes(name, CASES[name], 1 if args.smoke else args.rounds, smoke=args.smoke)
            write_record(record, args.out)
        return
    names = args.cases or [n for n, c in CASES.items() if not c.gpu or torch.cuda.is_available()]
    for name in names:
        case = CASES[name]
        if args.smoke:
            case = replace(case, steps=3, warmup=1)
        write_record(compare(name, case, 1 if args.smoke else args.rounds, smoke=args.smoke), args.out)


if __name__ == "__main__":
    main()
