"""Peak memory and step time of training steps with and without activation checkpointing.

    python benchmarks/activation_checkpointing.py --out benchmarks/results/activation_checkpointing_cpu.jsonl

Each case trains ``--steps`` optimizer steps (after one warm-up step) of a task built exactly as ``zoo fit``
would build it from the task's arguments, once with ``activation_checkpointing`` off and once on, each in a
fresh process, so the kernel's peak resident size (``ru_maxrss``) is that configuration's alone. On a CPU the
peak counts weights, optimizer state and activations together, as GPU memory would; the difference between the
two runs is the activations that checkpointing did not keep. ``--smoke`` runs one tiny case in this process, for CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import measured_here, write_record

# Case -> (task class, task arguments, batch maker arguments).
CASES: dict[str, dict[str, Any]] = {
    "gpt_mini": {"kind": "lm", "backbone": "gpt_mini", "vocab_size": 65, "block_size": 256, "batch": 16},
    "vit_small_cifar": {"kind": "image", "backbone": "vit_small_cifar", "batch": 64},
}
SMOKE = {"gpt_mini": {"kind": "lm", "backbone": "gpt_nano", "vocab_size": 65, "block_size": 32, "batch": 2}}


def child(case: dict[str, Any], checkpointing: bool, steps: int) -> dict[str, Any]:
    """Train ``steps`` steps in this process and return the step times and the process's peak memory."""
    from zoo.tasks import ImageClassifier, LanguageModel

    torch.manual_seed(0)
    if case["kind"] == "lm":
        task = LanguageModel(case["backbone"], vocab_size=case["vocab_size"], block_size=case["block_size"],
                             activation_checkpointing=checkpointing)  # fmt: skip
        tokens = torch.randint(0, case["vocab_size"], (case["batch"], case["block_size"] + 1))
        batch = (tokens[:, :-1], tokens[:, 1:])
    else:
        task = ImageClassifier(case["backbone"], num_classes=10, activation_checkpointing=checkpointing)
        batch = (torch.randn(case["batch"], 3, 32, 32), torch.randint(0, 10, (case["batch"],)))
    task.train()
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        logits = task(batch[0])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2).float(), batch[1].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer state
            times.append(time.perf_counter() - started)
    return {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "step_s": round(statistics.median(times), 4),
        "parameters": sum(p.numel() for p in task.parameters()),
    }


def compare(name: str, case: dict[str, Any], steps: int, in_process: bool = False) -> dict[str, Any]:
    """Run the case off and on, each in a fresh process (or here, for the smoke run: its peaks mean nothing)."""
    runs = {}
    for checkpointing in (False, True):
        if in_process:
            runs["on" if checkpointing else "off"] = child(case, checkpointing, steps)
            continue
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(case), str(checkpointing), str(steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs["on" if checkpointing else "off"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:<16} checkpointing {'on ' if checkpointing else 'off'} {runs['on' if checkpointing else 'off']}")
    off, on = runs["off"], runs["on"]
    return {
        "benchmark": "activation_checkpointing",
        "case": name,
        **{k: case[k] for k in case if k != "kind"},
        "steps": steps,
        "off": off,
        "on": on,
        "peak_saved_mb": round(off["peak_rss_mb"] - on["peak_rss_mb"], 1),
        "time_cost": round(on["step_s"] / off["step_s"], 3),
        **measured_here("activation_checkpointing.py"),
    }


def main() -> None:
    """Compare every case (or run one configuration, as the child process)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        case, flag, steps = json.loads(sys.argv[2]), sys.argv[3] == "True", int(sys.argv[4])
        print(json.dumps(child(case, flag, steps)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny models, one step (for CI)")
    args = parser.parse_args()
    for name, case in (SMOKE if args.smoke else CASES).items():
        write_record(compare(name, case, 1 if args.smoke else args.steps, in_process=args.smoke), args.out)


if __name__ == "__main__":
    main()
