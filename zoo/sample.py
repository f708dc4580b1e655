"""``zoo sample``: write generated images from a diffusion checkpoint as a PNG grid and one PNG each."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.arguments import at_least

if TYPE_CHECKING:
    import torch

    from zoo.tasks import DiffusionModel

__all__ = ["run_sample_command"]


def run_sample_command(argv: list[str]) -> None:
    """Parse ``argv`` (the arguments after ``sample``), load the checkpoint and write the images."""
    parser = argparse.ArgumentParser(
        prog="zoo sample",
        description=(
            "Generate images from a zoo diffusion checkpoint. The checkpoint's weights are the EMA average when "
            "it was trained with the EMA callback; --raw_weights samples with the trained weights instead."
        ),
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `zoo fit` (e.g. .../last.ckpt)")
    parser.add_argument("--out", required=True, help="folder for grid.png and images/NNNNN.png (created)")
    parser.add_argument("--num_images", type=at_least(1), default=64)
    parser.add_argument("--seed", type=int, default=0, help="the same seed, sampler and steps give the same images")
    parser.add_argument("--sampler", choices=("ddpm", "ddim"), default=None, help="default: the checkpoint's")
    parser.add_argument("--steps", type=at_least(1), default=None, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--class_label", type=int, default=None, help="one class for every image (conditional)")
    parser.add_argument("--guidance_scale", type=float, default=None, help="classifier-free guidance (1: none)")
    parser.add_argument("--eta", type=at_least(0.0, float), default=0.0, help="DDIM stochasticity (0: deterministic)")
    parser.add_argument("--batch_size", type=at_least(1), default=256)
    parser.add_argument("--raw_weights", action="store_true", help="sample with the trained, not the EMA, weights")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    args = parser.parse_args(argv)

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        model = load_diffusion_checkpoint(args.ckpt_path, device, raw_weights=args.raw_weights)
        images = model.sample(
            args.num_images,
            seed=args.seed,
            sampler=args.sampler,
            steps=args.steps,
            class_labels=None if args.class_label is None else [args.class_label],
            guidance_scale=args.guidance_scale,
            eta=args.eta,
            batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    grid, folder = write_images(images, Path(args.out))
    print(f"wrote {args.num_images} images to {folder} and the grid to {grid}")


def load_diffusion_checkpoint(path: str | Path, device: str = "cpu", raw_weights: bool = False) -> DiffusionModel:
    """A :class:`zoo.tasks.DiffusionModel` from a checkpoint, in eval mode, with EMA or trained weights.

    Read once with ``weights_only=True`` by :func:`zoo.checkpoints.load_checkpoint`, which also lists
    mismatched keys.

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
        ValueError: If it is truncated, not a diffusion model's, or ``raw_weights`` is asked of a checkpoint
            trained without EMA (its weights are the trained ones already; saying so avoids a silent no-op).
    """
    from zoo.checkpoints import load_checkpoint

    weights = "trained" if raw_weights else "ema"
    return load_checkpoint(path, task_class="zoo.tasks.DiffusionModel", weights=weights, device=device).task


def write_images(images: torch.Tensor, out: Path) -> tuple[Path, Path]:
    """Save ``(N, C, H, W)`` images in ``[0, 1]`` as ``out/grid.png`` and ``out/images/00000.png``...

    Returns:
        The grid's path and the folder of the single images.
    """
    from torchvision.utils import make_grid, save_image

    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images = images.detach().float().cpu()
    for index, image in enumerate(images):
        save_image(image, folder / f"{index:05d}.png")
    grid = out / "grid.png"
    save_image(make_grid(images, nrow=max(1, round(len(images) ** 0.5)), padding=2), grid)
    return grid, folder
