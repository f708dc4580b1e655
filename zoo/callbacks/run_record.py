"""Save, beside the run's ``config.yaml``, what the config does not say: ``env.json`` and ``data.json``.

LightningCLI's :class:`~lightning.pytorch.cli.SaveConfigCallback` writes the resolved config into the run folder;
this one also writes the environment (:func:`zoo.provenance.run_environment`: git state, packages, hardware,
command line, seed, variables) and the data fingerprint (:meth:`zoo.data.ZooDataModule.fingerprint`) next to
it, under the same suffix: ``env.json`` with ``config.yaml``, ``env.resume-1.json`` with
``config.resume-1.yaml``. ``zoo report`` reads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from typing_extensions import override

from zoo.callbacks.metadata import data_fingerprint

__all__ = ["SaveRunRecord", "record_name"]


def record_name(config_filename: str, stem: str) -> str:
    """The file beside ``config_filename`` that holds ``stem``.

    ``("config.yaml", "env")`` -> ``"env.json"``; ``("config.resume-2.yaml", "env")`` -> ``"env.resume-2.json"``.
    """
    suffix = Path(config_filename).name.removeprefix("config").removesuffix(".yaml")
    return f"{stem}{suffix}.json"


class SaveRunRecord(SaveConfigCallback):
    """LightningCLI's config saving, plus ``env.json`` (see the module's docstring).

    Args:
        parser, config, config_filename, overwrite, multifile, save_to_log_dir: As
            :class:`~lightning.pytorch.cli.SaveConfigCallback`.
        environment: What :func:`zoo.provenance.run_environment` returned for this run (``None``: no file).
    """

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: Any,
        config_filename: str = "config.yaml",
        overwrite: bool = False,
        multifile: bool = False,
        save_to_log_dir: bool = True,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(parser, config, config_filename, overwrite, multifile, save_to_log_dir)
        self.environment = environment
        self._log_dir: str | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._log_dir = trainer.log_dir  # on every rank: it broadcasts, and save_config runs on rank zero only
        super().setup(trainer, pl_module, stage)

    @override
    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._log_dir is None:
            return
        records = {"env": self.environment, "data": data_fingerprint(trainer)}
        for stem, record in records.items():
            if record is not None:
                path = Path(self._log_dir) / record_name(self.config_filename, stem)
                partial = path.with_name(path.name + ".partial")
                partial.write_text(json.dumps(record, indent=2, default=str) + "\n")
                os.replace(partial, path)
