"""Latency of eager PyTorch, TorchScript and onnxruntime for the CIFAR-10 CNNs and the small GPTs, on CPU.

    python benchmarks/export_latency.py --out benchmarks/results/export_latency_cpu.jsonl [--smoke]

Each model is exported with ``export.export_checkpoint`` (random weights: latency does not depend on their
values), then every runtime is timed on the same input at batch 1 and 32: the median of up to ``--repeats`` calls
(as many as fit in ``--seconds``) after ``--warmup`` calls, in interleaved blocks of five calls per runtime so
that machine noise hits all runtimes alike. Every runtime runs with its default threading, as deployed. Both
onnxruntime's and PyTorch's (OpenMP) worker threads busy-wait for a while after a call, which would take the
cores from the runtime timed next, so the script pauses ``PAUSE_S`` at each switch of runtime until they sleep.
For the GPTs, onnxruntime is also timed after its transformer optimiser (``onnxruntime.transformers.optimizer``).

Each record also holds the model's FLOPs per call (``torch.utils.flop_counter``, nominal: direct convolution and
matmul) and every runtime's achieved GFLOP/s, beside this machine's fp32 matmul ceiling (a 4096^3 matmul in
PyTorch and in onnxruntime), which tells how much any runtime could still gain on a compute-bound model. Prints a
table with each runtime's speed-up over eager and appends one JSON record per model and batch to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import hardware

from export import export_checkpoint
from export.formats import runner
from export.specs import export_spec
from zoo.checkpoints import load_checkpoint
from zoo.tasks import ImageClassifier, LanguageModel

CNNS = ("speedrun_net_tiny", "speedrun_net", "resnet18_cifar")
GPTS = {"gpt_nano": (4, 128), "gpt_mini": (6, 384)}  # name -> (heads, width) for the ORT optimiser
BLOCK = 5  # calls of one runtime in a row
PAUSE_S = 0.01  # at each switch of runtime: long enough for spinning worker threads to go to sleep


def _checkpoint(name: str, folder: Path) -> Path:
    torch.manual_seed(0)
    task = ImageClassifier(name, num_classes=10) if name in CNNS else LanguageModel(name, vocab_size=65)
    hparams = {"_class_path": f"zoo.tasks.{type(task).__name__}", **dict(task.hparams)}
    path = folder / f"{name}.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams}, path)
    return path


def _ort_transformer_optimised(path: Path, heads: int, width: int) -> Callable[..., torch.Tensor]:
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = path.with_name(path.stem + ".ort-opt.onnx")
    optimize_model(str(path), model_type="gpt2", num_heads=heads, hidden_size=width).save_model_to_file(str(optimised))
    return runner("onnx", optimised)


def _matmul_ceiling_gflops(size: int = 4096, calls: int = 5) -> dict[str, float]:
    """This machine's achieved fp32 GFLOP/s on one large square matmul, in PyTorch and in onnxruntime."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = torch.randn(size, size), torch.randn(size, size)
    runs = {"torch": lambda: a @ b, "onnxruntime": lambda: session.run(None, {"a": a.numpy(), "b": b.numpy()})}
    ceiling = {}
    for key, fn in runs.items():
        fn()
        best = min(_call_ms(fn, ()) for _ in range(calls))
        ceiling[key] = round(2 * size**3 / (best / 1000) / 1e9, 1)
        time.sleep(PAUSE_S)
    return ceiling


def _flops(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


def _call_ms(fn: Callable[..., object], inputs: tuple[torch.Tensor, ...]) -> float:
    start = time.perf_counter()
    fn(*inputs)
    return (time.perf_counter() - start) * 1000


def interleaved_medians(
    runtimes: dict[str, Callable[..., object]], inputs: tuple[torch.Tensor, ...], warmup: int, repeats: int,
    seconds: float,
) -> tuple[dict[str, float], int]:  # fmt: skip
    """Median milliseconds per call of each runtime on ``inputs``, timed in interleaved blocks; and calls per runtime.

    After ``warmup`` calls each, the runtimes take turns in blocks of ``BLOCK`` calls, for at most ``repeats``
    calls each or as many as fit in ``seconds`` (at least one block), pausing at each switch (``PAUSE_S``).
    """
    for fn in runtimes.values():
        for _ in range(warmup):
            fn(*inputs)
    per_call = sum(_call_ms(fn, inputs) for fn in runtimes.values()) / 1000
    rounds = max(1, min(repeats, int(seconds / per_call)) // BLOCK)
    samples: dict[str, list[float]] = {k: [] for k in runtimes}
    for _ in range(rounds):
        for key, fn in runtimes.items():
            time.sleep(PAUSE_S)
            samples[key] += [_call_ms(fn, inputs) for _ in range(BLOCK)]
    return {k: statistics.median(v) for k, v in samples.items()}, rounds * BLOCK


def main() -> None:
    """Export, time and record every model at batch 1 and 32."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--models", nargs="*", default=[*CNNS, *GPTS])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget per model and batch (>= 5 rounds)")
    parser.add_argument("--smoke", action="store_true", help="one small model of each kind, few calls (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.models, args.batches, args.warmup, args.repeats, args.seconds = (
            ["speedrun_net_tiny", "gpt_nano"],
            [2],
            1,
            5,
            0,
        )
    torch.set_grad_enabled(False)
    ceiling = _matmul_ceiling_gflops(size=512 if args.smoke else 4096)
    print(f"fp32 matmul ceiling, GFLOP/s: {ceiling}")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            checkpoint = _checkpoint(name, folder)
            report = export_checkpoint(checkpoint, folder / name, formats=["onnx", "torchscript"], verify=True)
            if not report.ok:
                raise SystemExit(f"{name}: export failed\n{report.table()}")
            spec = export_spec(load_checkpoint(checkpoint))
            stem = folder / name / name
            runtimes: dict[str, Callable[..., torch.Tensor]] = {
                "eager": spec.module,
                "torchscript": runner("torchscript", stem.with_suffix(".torchscript.pt")),
                "onnxruntime": runner("onnx", stem.with_suffix(".onnx")),
            }
            if name in GPTS:
                runtimes["onnxruntime+transformer-opt"] = _ort_transformer_optimised(
                    stem.with_suffix(".onnx"), *GPTS[name]
                )
            for batch in args.batches:
                sizes = {"batch": batch}
                if name in GPTS:
                    sizes["tokens"] = spec.inputs[0].max_sizes["tokens"]
                inputs = spec.make_inputs(sizes)
                medians, calls = interleaved_medians(runtimes, inputs, args.warmup, args.repeats, args.seconds)
                flops = _flops(spec.module, inputs)
                record = {
                    "benchmark": "export_latency",
                    "model": name,
                    "batch": batch,
                    "input": {k: list(t.shape) for k, t in zip([i.name for i in spec.inputs], inputs, strict=True)},
                    "median_ms": {k: round(v, 3) for k, v in medians.items()},
                    "speedup_vs_eager": {k: round(medians["eager"] / v, 2) for k, v in medians.items()},
                    "calls": calls,
                    "gflop_per_call": round(flops / 1e9, 4),
                    "gflops": {k: round(flops / v / 1e6, 1) for k, v in medians.items()},
                    "fp32_matmul_ceiling_gflops": ceiling,
                    "command": "python benchmarks/export_latency.py " + " ".join(sys.argv[1:]),
                    "hardware": hardware(),
                    "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                }
                records.append(record)
                cells = "  ".join(f"{k} {v:.2f} ms ({record['speedup_vs_eager'][k]:.2f}x)" for k, v in medians.items())
                print(f"{name:<18} batch {batch:<3} {cells}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


if __name__ == "__main__":
    main()
