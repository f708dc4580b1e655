"""int8 quantization, structured pruning and distillation of trained zoo checkpoints, measured side by side on CPU.

    python benchmarks/compression.py quantize --ckpt C [C ...] --out benchmarks/results/compression_cpu.jsonl
    python benchmarks/compression.py prune --ckpt C --sparsities 0 0.3 0.5 0.7 --finetune_epochs 1 --out ...
    python benchmarks/compression.py distill --teacher C --seeds 0 1 2 --epochs 6 --out ...
    python benchmarks/compression.py plot --records QUANTIZE.jsonl PRUNE.jsonl --out docs/pages/img/compression.png

``quantize``: for each classifier checkpoint, fp32 eager PyTorch, fp32 onnxruntime, int8 onnxruntime (static QDQ,
``zoo quantize``'s defaults: 8 calibration batches of the training split) and int8 torchao (PT2E with the x86
Inductor quantizer, run through ``torch.compile``, which is how its int8 kernels are reached): accuracy on the
test split, size on disk, and median latency at batch 1 and 32, the runtimes timed in interleaved blocks in one
process (``export_latency.interleaved_medians``). For language models: perplexity on the validation split and
latency, fp32 against dynamic int8 (onnxruntime).

``prune``: the checkpoint pruned structurally to each sparsity with ``zoo prune`` (fine-tuned with its recipe),
then the test accuracy, parameters, FLOPs and latency of the exported (shrunk) ONNX model.

``distill``: the student recipe trained alone and distilled from the teacher, for each seed, on the same budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_latency import interleaved_medians
from recipe_accuracy import hardware

from export import export_checkpoint
from export.formats import runner
from export.quality import measure_quality
from export.quantize import quantize_checkpoint
from export.specs import export_spec
from zoo.checkpoints import load_checkpoint
from zoo.evaluation.predictions import build_data

REPO = Path(__file__).resolve().parents[1]


def _record(args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "command": "python benchmarks/compression.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def _write(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def _size(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 3)


def _compiled_program(path: Path) -> Any:
    """The torchao program at ``path`` compiled by Inductor with freezing, which lowers q/dq pairs to int8 kernels."""
    import torch._inductor.config as inductor

    from export.formats import load_program

    inductor.freezing = True
    module = load_program(path).module()
    return torch.compile(module)


def quantize(args: argparse.Namespace) -> None:
    overrides = ["--data.init_args.batch_size", str(args.batch_size), "--data.init_args.num_workers", "2"]
    overrides += [*args.data, *args.test_data]
    records = []
    for checkpoint in args.ckpt:
        loaded = load_checkpoint(checkpoint)
        name = loaded.task.backbone_name
        language = loaded.task_class.endswith("LanguageModel")
        split = "val" if language else "test"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fp32 = export_checkpoint(checkpoint, folder, ["onnx"], verify=False)
            fp32_file = folder / fp32.rows[0]["file"]
            data = build_data(None, loaded, overrides)
            ort = quantize_checkpoint(checkpoint, folder / "ort", split=split, data_overrides=overrides,
                                      limit_batches=args.limit_batches)  # fmt: skip
            artifacts = {"fp32 onnxruntime": (fp32_file, runner("onnx", fp32_file)),
                         "int8 onnxruntime": (ort.artifact, runner("onnx", ort.artifact))}  # fmt: skip
            if not language:
                ao = quantize_checkpoint(checkpoint, folder / "ao", backend="torchao", split=split,
                                         data_overrides=overrides, limit_batches=args.limit_batches)  # fmt: skip
                artifacts["int8 torchao"] = (ao.artifact, _compiled_program(ao.artifact))
            quality: dict[str, Any] = {}
            for key, (_path, run) in artifacts.items():
                measured = measure_quality(loaded, data, run, split, args.limit_batches)
                quality["fp32 eager"] = measured.reference
                quality[key] = measured.compressed
                print(f"{name}: {key}: {measured.describe()}", flush=True)
            spec = export_spec(loaded)
            runtimes = {"fp32 eager": spec.module, **{k: run for k, (_p, run) in artifacts.items()}}
            sizes_mib = {"fp32 eager": _size(fp32_file), **{k: _size(p) for k, (p, _r) in artifacts.items()}}
            for batch in args.batches:
                shape = {"batch": batch}
                if language:
                    shape["tokens"] = spec.inputs[0].max_sizes["tokens"]
                inputs = spec.make_inputs(shape)
                with torch.no_grad():
                    medians, calls = interleaved_medians(runtimes, inputs, args.warmup, args.repeats, args.seconds)
                record = _record(
                    args, benchmark="compression_quantize", model=name, checkpoint=str(checkpoint), batch=batch,
                    metric="perplexity" if language else "accuracy", split=split, quality=quality,
                    size_mib=sizes_mib, median_ms={k: round(v, 3) for k, v in medians.items()},
                    speedup_vs_fp32_onnxruntime={k: round(medians["fp32 onnxruntime"] / v, 2)
                                                 for k, v in medians.items()},
                    calls=calls, quantization={k: v for k, v in ort.metadata["compression"].items()},
                )  # fmt: skip
                records.append(record)
                cells = "  ".join(f"{k} {v:.2f} ms" for k, v in medians.items())
                print(f"{name:<18} batch {batch:<3} {cells}", flush=True)
    _write(args, records)


def prune(args: argparse.Namespace) -> None:
    from zoo.cli import main as zoo_main
    from zoo.prune import compare_exported_size

    checkpoint = args.ckpt[0]
    loaded = load_checkpoint(checkpoint)
    overrides = ["--data.init_args.batch_size", str(args.batch_size), "--data.init_args.num_workers", "2"]
    records, runtimes, inputs = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for sparsity in args.sparsities:
            fit = [*overrides, *args.data, *args.fit, "--test_after_fit", "false",
                   "--trainer.enable_progress_bar", "false"]  # fmt: skip
            zoo_main(["prune", "--ckpt_path", str(checkpoint), "--sparsity", str(sparsity), "--finetune_epochs",
                      str(args.finetune_epochs), "--out", str(folder / f"s{sparsity}"), "--", *fit])  # fmt: skip
            pruned = next((folder / f"s{sparsity}").glob("**/checkpoints/last.ckpt"))
            before, after = compare_exported_size(pruned)
            export_checkpoint(pruned, folder / f"export{sparsity}", ["onnx"], verify=False)
            onnx_file = next((folder / f"export{sparsity}").glob("*.onnx"))
            pruned_loaded = load_checkpoint(pruned)
            data = build_data(None, pruned_loaded, [*overrides, *args.data, *args.test_data])
            run = runner("onnx", onnx_file)
            measured = measure_quality(pruned_loaded, data, run, "test", args.limit_batches)
            runtimes[sparsity] = run
            records.append(_record(
                args, benchmark="compression_prune", model=loaded.task.backbone_name, checkpoint=str(checkpoint),
                sparsity=sparsity, method="structured", finetune_epochs=args.finetune_epochs,
                test_accuracy=round(measured.compressed, 2), parameters=after["parameters"],
                parameters_unpruned=before["parameters"], mflops=round(after["flops"] / 1e6, 1),
                mflops_unpruned=round(before["flops"] / 1e6, 1), onnx_mib=_size(onnx_file),
            ))  # fmt: skip
            print(f"sparsity {sparsity}: test accuracy {measured.compressed:.2f}%, {after['parameters']:,} parameters, "
                  f"{after['flops'] / 1e6:.1f} MFLOPs", flush=True)  # fmt: skip
        spec = export_spec(loaded)
        for batch in args.batches:
            inputs = spec.make_inputs({"batch": batch})
            medians, _ = interleaved_medians({str(k): v for k, v in runtimes.items()}, inputs, args.warmup,
                                                 args.repeats, args.seconds)  # fmt: skip
            for record in records:
                record.setdefault("median_ms", {})[str(batch)] = round(medians[str(record["sparsity"])], 3)
            print(f"batch {batch}: " + "  ".join(f"sparsity {k}: {v:.2f} ms" for k, v in medians.items()), flush=True)
    _write(args, records)


def distill(args: argparse.Namespace) -> None:
    from zoo.lightning_cli import ZooLightningCLI

    recipe = str(REPO / "recipes/cifar10/distill_speedrun_net_tiny.yaml")
    results: dict[str, list[float]] = {"alone": [], "distilled": []}
    records = []
    for seed in args.seeds:
        for mode in ("alone", "distilled"):
            teacher = ["--model.init_args.teacher", str(args.teacher)] if mode == "distilled" else [
                "--model.init_args.distill_alpha", "0.0", "--model.init_args.teacher", "null"]  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                cli = ZooLightningCLI(args=[
                    "fit", "--config", recipe, "--seed_everything", str(seed), "--trainer.max_epochs", str(args.epochs),
                    "--trainer.default_root_dir", tmp, "--trainer.enable_progress_bar", "false",
                    "--data.init_args.num_workers", "2", *teacher, *args.data,
                ])  # fmt: skip
                accuracy = 100 * float(cli.trainer.callback_metrics["test/acc1"])
            results[mode].append(accuracy)
            records.append(_record(args, benchmark="compression_distill", student="speedrun_net_tiny",
                                   teacher=str(args.teacher), mode=mode, seed=seed, epochs=args.epochs,
                                   test_accuracy=round(accuracy, 2)))  # fmt: skip
            print(f"seed {seed} {mode}: test accuracy {accuracy:.2f}%", flush=True)
    for mode, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{mode}: mean {statistics.mean(values):.2f}% (sd {spread:.2f}) over seeds {args.seeds}")
    _write(args, records)


def plot(args: argparse.Namespace) -> None:
    """The compression page's picture, from the quantize and prune records: accuracy against latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quant = [json.loads(line) for line in args.records[0].read_text().splitlines()]
    pruned = [json.loads(line) for line in args.records[1].read_text().splitlines()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {"fp32 eager": "o", "fp32 onnxruntime": "s", "int8 onnxruntime": "D", "int8 torchao": "^"}
    colors = {"speedrun_net_tiny": "C0", "speedrun_net": "C1", "resnet18_cifar": "C2", "vit_tiny_cifar": "C3"}
    for record in quant:
        if record["batch"] == 32 and record["model"] in colors:
            for key, marker in markers.items():
                left.scatter(record["median_ms"][key], record["quality"][key], marker=marker,
                             color=colors[record["model"]], s=45)  # fmt: skip
    for model, color in colors.items():
        left.scatter([], [], color=color, label=model)
    for key, marker in markers.items():
        left.scatter([], [], marker=marker, color="grey", label=key)
    left.set(xscale="log", xlabel="median latency at batch 32 (ms, log scale)", ylabel="CIFAR-10 test accuracy (%)",
             title="int8: the same accuracy in less time")  # fmt: skip
    left.legend(fontsize=7, loc="center right")
    sparsity = [r["sparsity"] for r in pruned]
    lines = right.plot(sparsity, [r["test_accuracy"] for r in pruned], "o-", color="C2", label="test accuracy (%)")
    twin = right.twinx()
    lines += twin.plot(sparsity, [r["median_ms"]["32"] for r in pruned], "s--", color="C4",
                       label="onnxruntime fp32 latency, batch 32 (ms)")  # fmt: skip
    lines += twin.plot(sparsity, [r["mflops"] / 10 for r in pruned], "^:", color="grey", label="MFLOPs / 10")
    right.set(xlabel="structured sparsity of resnet18_cifar (channels pruned per group)",
              ylabel="test accuracy (%)", title="structured pruning, then 1 epoch of fine-tuning")  # fmt: skip
    twin.set_ylabel("ms; MFLOPs / 10")
    right.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("quantize", "prune", "distill", "plot"))
    parser.add_argument("--records", type=Path, nargs=2, default=None, help="plot: the quantize and prune records")
    parser.add_argument("--ckpt", type=Path, nargs="*", default=[])
    parser.add_argument("--teacher", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--batch_size", type=int, default=256, help="data batch size for accuracy")
    parser.add_argument("--limit_batches", type=int, default=None, help="score only the first N batches")
    parser.add_argument("--sparsities", nargs="*", type=float, default=[0.0, 0.3, 0.5, 0.7])
    parser.add_argument("--finetune_epochs", type=int, default=1)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per runtime at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget per model and batch")
    parser.add_argument("--data", default="", help='data overrides, one string: "--data.init_args.variant full"')
    parser.add_argument("--test_data", default="", help="more data overrides for measuring accuracy only")
    parser.add_argument("--fit", default="", help="zoo fit overrides for the fine-tune (prune), one string")
    args = parser.parse_args()
    args.data, args.test_data, args.fit = shlex.split(args.data), shlex.split(args.test_data), shlex.split(args.fit)
    os.environ.setdefault("ZOO_DATA", str(REPO.parent / "shared" / "data"))
    torch.manual_seed(0)
    {"quantize": quantize, "prune": prune, "distill": distill, "plot": plot}[args.what](args)


if __name__ == "__main__":
    main()
