"""Turn a checkpoint of ``recipes/cifar10/speedrun_net_tiny.yaml`` into zoo's offline FID feature network.

    zoo fit --config recipes/cifar10/speedrun_net_tiny.yaml
    python zoo/metrics/assets/make_fid_features.py runs/cifar10/speedrun_net_tiny/version_0/checkpoints/last.ckpt \
        --test_acc1 0.8612 --wall_s 812 --hardware "2-core x86-64 CPU"

Writes ``cifar10_speedrun_net_tiny.safetensors`` beside this script: the backbone's weights from the
checkpoint's ``state_dict`` (the EMA average when trained with the EMA callback), stored as float32, with a
card in the file's metadata (key ``zoo_card``) and as ``cifar10_speedrun_net_tiny.json``: model, recipe and
its SHA-256, the figures given, and the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import save_file

import zoo
from zoo.weights import read_state_dict

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
RECIPE = "recipes/cifar10/speedrun_net_tiny.yaml"
MODEL = "speedrun_net_tiny"


def main() -> None:
    """Parse the arguments and write the weights and the card."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--test_acc1", type=float, required=True, help="test accuracy the run reported")
    parser.add_argument("--wall_s", type=float, required=True, help="wall time of the run")
    parser.add_argument("--hardware", required=True)
    args = parser.parse_args()
    model = zoo.create_model(MODEL)
    state = read_state_dict(args.checkpoint)
    model.load_state_dict(state)  # strict: the checkpoint must be exactly this network
    card = {
        "model": MODEL,
        "recipe": RECIPE,
        "recipe_sha256": hashlib.sha256((REPO / RECIPE).read_bytes()).hexdigest(),
        "test_acc1": args.test_acc1,
        "wall_s": args.wall_s,
        "hardware": args.hardware,
        "torch": torch.__version__,
        "zoo": zoo.__version__,
        "weights": "EMA average from the checkpoint's state_dict",
        "features": f"pre-logit ({model.num_features} values), CIFAR-10 normalisation",
        "command": f"zoo fit --config {RECIPE}",
        "made": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
    tensors |= {k: v.contiguous() for k, v in model.state_dict().items() if not v.is_floating_point()}
    save_file(tensors, HERE / f"cifar10_{MODEL}.safetensors", metadata={"zoo_card": json.dumps(card)})
    (HERE / f"cifar10_{MODEL}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
