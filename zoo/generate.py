"""``zoo generate``: print samples from a language-model checkpoint."""

from __future__ import annotations

import argparse

from zoo.arguments import at_least

__all__ = ["run_generate_command"]


def run_generate_command(argv: list[str]) -> None:
    """Parse ``argv`` (the arguments after ``generate``), load the checkpoint and print the samples."""
    parser = argparse.ArgumentParser(
        prog="zoo generate",
        description="Sample text from a zoo language-model checkpoint (its tokenizer travels inside it).",
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `zoo fit` (e.g. .../last.ckpt)")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max_new_tokens", type=at_least(0), default=500)
    parser.add_argument(
        "--temperature", type=at_least(0.0, float), default=0.8, help="0 always picks the most likely token"
    )
    parser.add_argument("--top_k", type=at_least(0), default=200, help="sample among the k most likely tokens (0: all)")
    parser.add_argument("--seed", type=int, default=1337, help="the same seed gives the same samples")
    parser.add_argument("--num_samples", type=at_least(1), default=1)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    args = parser.parse_args(argv)

    import torch

    from zoo.checkpoints import load_checkpoint

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        model = load_checkpoint(args.ckpt_path, task_class="zoo.tasks.LanguageModel", device=device).task
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if model.tokenizer is None:
        parser.error(f"checkpoint {args.ckpt_path} holds no tokenizer (was it trained on a text data module?)")
    try:
        model.tokenizer.encode(args.prompt)
    except ValueError as err:
        parser.error(f"the prompt cannot be encoded: {err}")
    for index in range(args.num_samples):
        text = model.generate(
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k or None,
            seed=args.seed + index,
        )
        print(text)
        if index + 1 < args.num_samples:
            print("-" * 40)
