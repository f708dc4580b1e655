"""Run an exported artifact on raw input (image files, text) with the preprocessing it carries.

Needs neither the checkpoint nor zoo's training code: the artifact's inference signature gives the image size
and normalisation, the label names and the tokenizer. Artifacts exported by zoo 0.1, before signatures, are
read too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from export.formats import read_metadata, runner
from zoo.data.facts import tokenizer_from_spec
from zoo.data.text_classification import encode_texts
from zoo.data.vision import preprocess_images
from zoo.errors import CheckpointError, ConfigError, MissingFileError
from zoo.tasks.signature import ImageInput, InferenceSignature, NoiseInput, TextInput, TokenInput

__all__ = ["ExportedModel", "load"]

_FORMAT_OF_SUFFIX = {".onnx": "onnx", ".pt2": "exported_program", ".pt": "torchscript"}


def load(path: str | os.PathLike[str]) -> ExportedModel:
    """Load an artifact written by ``zoo export`` (ONNX, TorchScript or ExportedProgram, by its suffix).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the suffix is unknown, the file carries no zoo metadata, or its weights changed after
            export (see :func:`export.formats.check_artifact`).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"exported model {path} does not exist")
    fmt = _FORMAT_OF_SUFFIX.get(path.suffix)
    if fmt is None:
        raise ConfigError(f"{path}: unknown artifact suffix {path.suffix!r}; expected .onnx, .pt2 or .torchscript.pt")
    return ExportedModel(path, fmt, read_metadata(path))  # read_metadata checks the weights too


class ExportedModel:
    """An exported network with its metadata: call it on tensors, or ``predict``/``generate`` on raw input.

    Attributes:
        path: The artifact.
        format: ``"onnx"``, ``"torchscript"``, ``"exported_program"``, or ``"eager"`` for a checkpoint's own
            network (``run`` given; see :func:`export.serve.model.load_servable`).
        metadata: What the artifact says about itself (model, inputs, preprocessing, labels, recipe, metrics).
        signature: The inference signature read from the metadata.
    """

    def __init__(
        self, path: Path, fmt: str, metadata: dict[str, Any], run: Callable[..., torch.Tensor] | None = None
    ) -> None:
        self.path = path
        self.format = fmt
        self.metadata = metadata
        self.signature = InferenceSignature.from_dict(metadata)
        self._run = runner(fmt, path) if run is None else run
        self._tokenizer: Any = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Run the network on already-preprocessed tensors (see ``metadata["inputs"]``)."""
        return self._run(*inputs)

    @property
    def labels(self) -> list[str] | None:
        """Class names, when the model classifies."""
        return None if self.signature.labels is None else list(self.signature.labels)

    def _preprocessing(self, kind: type | tuple[type, ...], what: str) -> Any:
        """The signature's preprocessing when it is of ``kind``; else a ``ValueError`` saying what the model takes."""
        preprocessing = self.signature.preprocessing
        if not isinstance(preprocessing, kind):
            raise self._wrong_input(what)
        return preprocessing

    def _wrong_input(self, what: str) -> ConfigError:
        preprocessing = self.signature.preprocessing
        takes = "no raw input it can prepare" if preprocessing is None else f"{preprocessing.kind} input"
        return ConfigError(f"{self.path}: {what}, but this {self.signature.task or 'model'} takes {takes}")

    # Images ----------------------------------------------------------------------------------------------

    def preprocess_images(self, images: Sequence[str | os.PathLike[str] | Any]) -> torch.Tensor:
        """Image files, PIL images or ``(H, W, C)`` uint8 arrays -> the normalised ``(N, C, S, S)`` batch."""
        pre: ImageInput = self._preprocessing(ImageInput, "images were given")
        return preprocess_images(pre, images)

    def predict(self, inputs: Sequence[str | os.PathLike[str] | Any], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Classify raw inputs: per input, the ``top_k`` ``(label, probability)`` pairs, most likely first.

        Inputs are image files, PIL images or uint8 arrays for an image classifier, and strings for a text
        classifier (the signature's preprocessing says which). The probabilities are the softmax of the logits
        divided by the checkpoint's calibrated temperature, when it has one.

        Raises:
            ValueError: For no inputs, a single input not in a list, or a model whose raw input is neither images
                nor text (a language model, a denoiser).
        """
        if isinstance(inputs, str | os.PathLike):
            raise ConfigError(f"predict() takes a list of inputs, got the single {inputs!r}; pass [{inputs!r}]")
        if len(inputs) == 0:
            raise ConfigError("predict() got an empty list: give at least one image or text")
        if isinstance(self.signature.preprocessing, TextInput):
            logits = self(*self.preprocess_texts([str(text) for text in inputs]))
        elif isinstance(self.signature.preprocessing, ImageInput):
            logits = self(self.preprocess_images(inputs))
        else:
            raise self._wrong_input("predict() classifies images or texts")
        return self.top_labels(self.probabilities(logits), top_k)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, classes)``: the softmax of ``logits`` over the calibrated temperature."""
        return (logits.float() / self.temperature).softmax(dim=-1)

    def top_labels(self, probabilities: torch.Tensor, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Per row of ``probabilities`` ``(N, classes)``, the ``top_k`` ``(label, probability)`` pairs."""
        values, indices = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
        names = self.labels or [str(i) for i in range(probabilities.shape[-1])]
        return [[(names[i], float(p)) for p, i in zip(row_p, row_i, strict=True)]
                for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)]  # fmt: skip

    @property
    def temperature(self) -> float:
        """The temperature ``zoo evaluate --calibrate`` fitted into the checkpoint (1.0 when uncalibrated)."""
        return float((self.metadata.get("calibration") or {}).get("temperature", 1.0))

    # Text ------------------------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The tokenizer embedded in the metadata (zoo's or a Hugging Face one)."""
        if self._tokenizer is None:
            pre = self._preprocessing((TextInput, TokenInput), "text was given")
            if pre.tokenizer is None:
                raise CheckpointError(f"{self.path} carries no tokenizer: its run had no tokenizer to record")
            self._tokenizer = tokenizer_from_spec(pre.tokenizer)
        return self._tokenizer

    def preprocess_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``(input_ids, attention_mask)``, ``(N, L)`` each, with the embedded Hugging Face tokenizer.

        Special tokens are added, sequences are truncated to the model's ``max_length`` and padded to the longest.
        """
        pre: TextInput = self._preprocessing(TextInput, "texts were given")
        return encode_texts(self.tokenizer, texts, pre.max_length or self.signature.inputs[0].max_sizes["tokens"])

    def generate(
        self, prompt: str, max_new_tokens: int = 100, temperature: float = 0.8, top_k: int | None = 200, seed: int = 0
    ) -> str:
        """Continue ``prompt`` with a language model, sampling token by token from the artifact's logits."""
        return prompt + "".join(self.stream(prompt, max_new_tokens, temperature, top_k, seed))

    def stream(
        self, prompt: str, max_new_tokens: int = 100, temperature: float = 0.8, top_k: int | None = 200, seed: int = 0
    ) -> Iterator[str]:
        """:meth:`generate`'s continuation as it is sampled: the text each new token adds, one at a time.

        The text of a token is what decoding the whole sequence gains by it, so multi-byte characters split
        over several byte-level tokens come out whole (an empty piece while one is incomplete).
        """
        block = self._preprocessing(TokenInput, "generate() continues a prompt").block_size or None
        ids = torch.tensor([self.tokenizer.encode(prompt)], dtype=torch.long)
        start = ids.shape[1]
        generator = torch.Generator().manual_seed(seed)
        told = text = ""
        for _ in range(max_new_tokens):
            context = ids if block is None else ids[:, -block:]
            logits = self(context)[:, -1, :].float()
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
            ids = torch.cat([ids, next_id], dim=1)
            text = self.tokenizer.decode(ids[0, start:].tolist())
            stable = text.rstrip("\ufffd")  # an incomplete UTF-8 character waits for its next byte
            piece, told = stable[len(told) :], stable
            yield piece
        if text != told:
            yield text[len(told) :]

    # Diffusion -------------------------------------------------------------------------------------------

    def sample(
        self,
        num_images: int,
        seed: int = 0,
        steps: int = 50,
        sampler: str = "ddim",
        class_labels: Sequence[int] | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """Generate ``(num_images, C, H, W)`` images in ``[0, 1]`` with an exported denoiser.

        The artifact predicts the noise (or velocity) of one step; the noise schedule it carries rebuilds
        diffusers' scheduler, and zoo's own sampling loop runs it, as ``zoo sample`` does with a checkpoint.

        Args:
            num_images: How many images.
            seed: Seed of the noise.
            steps: Sampling steps (at most the training timesteps).
            sampler: ``"ddim"`` or ``"ddpm"``.
            class_labels: One class, or one per image, for a conditional denoiser (default: cycling classes).
            guidance_scale: Classifier-free guidance (default: the run's own).
        """
        from diffusers import DDPMScheduler

        from zoo.models.diffusion.sampling import make_sampling_scheduler, sample_images

        pre = self._preprocessing(NoiseInput, "sample() generates images")
        conditional = len(self.signature.inputs) == 3
        num_classes = len(self.labels) if self.labels else int(self.metadata["hparams"].get("num_classes") or 0)
        labels = None
        if conditional:
            labels = torch.arange(num_images) % num_classes if class_labels is None else torch.as_tensor(class_labels)
            labels = labels.expand(num_images) if labels.numel() == 1 else labels
        elif class_labels is not None:
            raise ConfigError(f"{self.path}: class labels were given, but this diffusion model is unconditional")
        training = DDPMScheduler.from_config(dict(pre.noise_schedule))
        scheduler = make_sampling_scheduler(training, sampler, steps)
        if guidance_scale is None:
            guidance_scale = float(self.metadata["hparams"].get("guidance_scale") or 1.0)
        denoiser = _ArtifactDenoiser(self, num_classes)
        shape = (num_images, pre.in_chans, pre.image_size, pre.image_size)
        generator = torch.Generator().manual_seed(seed)
        images = sample_images(denoiser, scheduler, shape, generator, labels, guidance_scale)
        return (images + 1) / 2


class _ArtifactDenoiser(torch.nn.Module):
    """An artifact as the ``(x, t, class_labels) -> prediction`` module zoo's sampling loop takes."""

    def __init__(self, model: ExportedModel, null_class: int) -> None:
        super().__init__()
        self.model = model
        self.null_class = null_class
        self.device_marker = torch.nn.Parameter(torch.empty(0), requires_grad=False)  # the loop reads the device

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        inputs = (x, t.long()) if class_labels is None else (x, t.long(), class_labels.long())
        return self.model(*inputs)
