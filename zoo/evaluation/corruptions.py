"""Common corruptions of images, generated on the fly: CIFAR-10-C's recipe (Hendrycks & Dietterich, 2019).

Fifteen types at five severities, with the CIFAR-10-C severity constants where the original's computation
needs no external assets or ImageMagick: noise (gaussian, shot, impulse, speckle), blur (gaussian, defocus,
glass, motion, zoom), weather without assets (fog, brightness) and digital (contrast, elastic, pixelate, JPEG).
Frost (photographs), snow and spatter (ImageMagick's motion blur) are left out. Three are close
approximations, said where they are defined: glass blur (a random local displacement instead of sequential
pixel swaps), motion blur (a straight line kernel instead of ImageMagick's) and brightness (added to RGB
instead of HSV value).

Every function takes ``images`` ``(N, C, H, W)`` float in ``[0, 1]``, a severity from 1 to 5 and a
``torch.Generator``, and returns a tensor of the same shape and dtype in ``[0, 1]``: the same generator state
gives the same corruption.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

__all__ = ["CORRUPTIONS", "corrupt"]


def _normal(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(images.shape, generator=generator, dtype=images.dtype)


def gaussian_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return images + c * _normal(images, generator)


def shot_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    c = (500, 250, 100, 75, 50)[severity - 1]
    return torch.poisson(images * c, generator=generator) / c


def impulse_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    draw = torch.rand(images.shape, generator=generator)
    out = images.clone()
    out[draw < amount / 2] = 0.0  # pepper
    out[(draw >= amount / 2) & (draw < amount)] = 1.0  # salt
    return out


def speckle_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    c = (0.06, 0.1, 0.12, 0.16, 0.2)[severity - 1]
    return images + images * c * _normal(images, generator)


def gaussian_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    return TF.gaussian_blur(images, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)


def _depthwise(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    channels = images.shape[1]
    weight = kernel.to(images.dtype)[None, None].expand(channels, 1, *kernel.shape)
    pad = (kernel.shape[1] // 2, kernel.shape[1] // 2, kernel.shape[0] // 2, kernel.shape[0] // 2)
    return F.conv2d(F.pad(images, pad, mode="reflect"), weight, groups=channels)


def defocus_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    span = math.ceil(radius) + 1
    grid = torch.arange(-span, span + 1, dtype=torch.float64)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).double()
    disk = TF.gaussian_blur(disk[None, None], kernel_size=2 * span + 1, sigma=alias)[0, 0] if alias else disk
    return _depthwise(images, disk / disk.sum())


def glass_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Blur, shift each pixel by up to ``delta`` in each direction, blur again (``iterations`` shifts).

    The original swaps pixels one by one in raster order; a random displacement field gives the same local
    shuffling in one gather per iteration.
    """
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[severity - 1]
    size = 2 * math.ceil(3 * sigma) + 1
    out = TF.gaussian_blur(images, kernel_size=size, sigma=sigma)
    n, _, h, w = images.shape
    for _ in range(iterations):
        dy = torch.randint(-delta, delta + 1, (n, h, w), generator=generator)
        dx = torch.randint(-delta, delta + 1, (n, h, w), generator=generator)
        rows = (torch.arange(h)[None, :, None] + dy).clamp(0, h - 1)
        cols = (torch.arange(w)[None, None, :] + dx).clamp(0, w - 1)
        flat = (rows * w + cols).view(n, 1, h * w).expand(-1, out.shape[1], -1)
        out = out.reshape(n, -1, h * w).gather(2, flat).view_as(out)
    return TF.gaussian_blur(out, kernel_size=size, sigma=sigma)


def motion_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A straight line kernel at a random angle per batch (ImageMagick's kernel in the original)."""
    length = (3, 4, 5, 6, 7)[severity - 1]
    angle = float(torch.empty(1).uniform_(-45, 45, generator=generator)) * math.pi / 180
    span = length // 2 + 1
    kernel = torch.zeros(2 * span + 1, 2 * span + 1, dtype=torch.float64)
    for t in torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        kernel[round(span + float(t) * math.sin(angle)), round(span + float(t) * math.cos(angle))] = 1.0
    return _depthwise(images, kernel / kernel.sum())


def zoom_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    top = (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1]
    zooms = torch.arange(1.0, top, 0.01).tolist()
    h, w = images.shape[-2:]
    out = images.clone()
    for zoom in zooms[1:]:
        size = (math.ceil(h * zoom), math.ceil(w * zoom))
        scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        top_row, left = (size[0] - h) // 2, (size[1] - w) // 2
        out += scaled[..., top_row : top_row + h, left : left + w]
    return out / len(zooms)


def _uniform(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.float64).uniform_(-1, 1, generator=generator)


def _plasma(size: int, decay: float, generator: torch.Generator) -> torch.Tensor:
    """A ``(size, size)`` plasma fractal in ``[0, 1]`` (diamond-square), as CIFAR-10-C's fog uses."""
    maps = torch.zeros(size, size, dtype=torch.float64)
    step, scale = size, 100.0
    while step >= 2:
        half = step // 2
        corners = maps[0:size:step, 0:size:step]
        mean = (corners + corners.roll(-1, 0) + corners.roll(-1, 1) + corners.roll(-1, 0).roll(-1, 1)) / 4
        maps[half:size:step, half:size:step] = mean + scale * _uniform(mean.shape, generator)
        corners = maps[0:size:step, 0:size:step]
        centres = maps[half:size:step, half:size:step]
        left = (corners + corners.roll(-1, 0) + centres + centres.roll(1, 1)) / 4
        top = (corners + corners.roll(-1, 1) + centres + centres.roll(1, 0)) / 4
        maps[half:size:step, 0:size:step] = left + scale * _uniform(left.shape, generator)
        maps[0:size:step, half:size:step] = top + scale * _uniform(top.shape, generator)
        step, scale = half, scale / decay
    maps -= maps.min()
    return maps / maps.max()


def fog(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    amount, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    h, w = images.shape[-2:]
    size = 2 ** math.ceil(math.log2(max(h, w)))
    layer = torch.stack([_plasma(size, decay, generator)[:h, :w] for _ in range(images.shape[0])])
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images + amount * layer[:, None].to(images.dtype)) * peak / (peak + amount)


def brightness(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """``c`` added to every channel (the original adds it to the HSV value)."""
    return images + (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]


def contrast(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * c + mean


def elastic_transform(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Torchvision's elastic transform, its smoothed displacement field (pixels) drawn from ``generator``."""
    alpha, sigma = ((2.5, 1.5), (5.0, 2.0), (10.0, 2.5), (15.0, 3.0), (20.0, 3.0))[severity - 1]
    h, w = images.shape[-2:]
    displacement = torch.rand(1, 2, h, w, generator=generator) * 2 - 1
    size = 2 * math.ceil(3 * sigma) + 1
    displacement = TF.gaussian_blur(displacement, kernel_size=size, sigma=sigma) * alpha
    displacement = (displacement / torch.tensor([w, h])[None, :, None, None]).permute(0, 2, 3, 1)
    return TF.elastic(images, displacement.to(images.dtype), interpolation=TF.InterpolationMode.BILINEAR)


def pixelate(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def jpeg_compression(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    quality = (80, 65, 58, 50, 40)[severity - 1]
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    if pixels.shape[1] in (1, 3):
        return TF.jpeg(pixels, quality=quality).to(images.dtype) / 255
    from PIL import Image  # other channel counts: one channel at a time through PIL

    out = []
    for image in pixels:
        planes = []
        for plane in image:
            buffer = io.BytesIO()
            Image.fromarray(plane.numpy()).save(buffer, format="JPEG", quality=quality)
            planes.append(torch.from_numpy(np.array(Image.open(buffer))))
        out.append(torch.stack(planes))
    return torch.stack(out).to(images.dtype) / 255


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur, "defocus_blur": defocus_blur,
    "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur, "fog": fog,
    "brightness": brightness, "contrast": contrast, "elastic_transform": elastic_transform, "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}  # fmt: skip


def corrupt(images: torch.Tensor, name: str, severity: int, generator: torch.Generator) -> torch.Tensor:
    """``images`` ``(N, C, H, W)`` in ``[0, 1]`` under corruption ``name`` at ``severity`` (1-5), in ``[0, 1]``.

    Raises:
        ValueError: For an unknown corruption or a severity outside 1-5.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1 to 5, got {severity}")
    return CORRUPTIONS[name](images.float(), severity, generator).clamp(0, 1).to(images.dtype)
