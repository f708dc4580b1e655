"""Turn a zoo checkpoint into verified ONNX, TorchScript and ``torch.export`` artifacts that describe themselves.

    from export import export_checkpoint, load
    report = export_checkpoint("runs/.../best.ckpt", out="exported")   # all three formats, verified
    model = load("exported/resnet18_cifar.onnx")                       # metadata + preprocessing inside
    model.predict(["cat.png"])                                          # top classes with their names

``zoo export --ckpt_path PATH --format onnx,torchscript,exported_program --out DIR`` is the command line twin.
Checkpoints are read by :mod:`zoo.checkpoints` (``load_checkpoint`` is re-exported here); what to export comes
from each task's inference signature. This package imports ``zoo``; ``zoo`` imports it only inside the
commands that export.
"""

from export.api import ExportReport, export_checkpoint
from export.formats import FORMATS, read_metadata
from export.predict import ExportedModel, load
from zoo.checkpoints import LoadedCheckpoint, load_checkpoint

__all__ = [
    "FORMATS",
    "ExportReport",
    "ExportedModel",
    "LoadedCheckpoint",
    "export_checkpoint",
    "load",
    "load_checkpoint",
    "read_metadata",
]
