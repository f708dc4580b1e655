"""Log to MLflow what makes a run reproducible, once per run, beside the metrics Lightning logs.

At set-up: the resolved config flattened into parameters (``model.init_args.optimizer.init_args.lr``), the
config and recipe files, the environment (:func:`zoo.provenance.run_environment`), the data fingerprint, the
model summary (parameters, trainable parameters, architecture text) and tags that find the run folder again;
on the first training batch the training FLOPs per sample (when the task counts them); at the end of ``fit``
the best checkpoint's path and score, and the file itself when asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from typing_extensions import override

from zoo.callbacks.metadata import data_fingerprint
from zoo.callbacks.run_record import record_name
from zoo.tracking.mlflow_logger import ZooMLFlowLogger
from zoo.tracking.plan import TRACKING_FILE, TrackingPlan

__all__ = ["MLflowRunRecord", "flatten_config"]

_SYSTEM_METRICS_INTERVAL_S = 10.0


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"init_args": {"lr": 0.1}}}`` -> ``{"model.init_args.lr": 0.1}``; list items by index."""
    flat: dict[str, Any] = {}
    items = config.items() if isinstance(config, Mapping) else enumerate(config)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, list | tuple) and any(isinstance(item, Mapping) for item in value):
            flat.update(flatten_config(list(value), name + "."))
        else:
            flat[name] = value
    return flat


class MLflowRunRecord(L.Callback):
    """Log a ``zoo fit`` run's record to its MLflow run (see the module's docstring).

    Args:
        logger: The run's MLflow logger.
        plan: Where the run goes and what to log beyond the default.
        config: The resolved config (nested plain data); logged flattened as parameters.
        config_text: The resolved config as YAML, logged as ``config_name``.
        config_name: ``config.yaml``, or ``config.resume-N.yaml`` for a resumed run (logged beside the first).
        recipes: The recipe files given with ``--config``, logged under ``recipe/``.
        environment: :func:`zoo.provenance.run_environment`, logged as ``env.json`` (``env.resume-N.json``).
        data_fingerprint: The data module's fingerprint, logged as ``data.json`` and as ``data.*`` parameters.
    """

    def __init__(
        self,
        logger: ZooMLFlowLogger,
        plan: TrackingPlan,
        config: Mapping[str, Any],
        config_text: str,
        config_name: str = "config.yaml",
        recipes: list[str] | None = None,
        environment: Mapping[str, Any] | None = None,
        data_fingerprint: Mapping[str, Any] | None = None,
    ) -> None:
        self.logger = logger
        self.plan = plan
        self.config = config
        self.config_text = config_text
        self.config_name = config_name
        self.recipes = recipes or []
        self.environment = environment
        self.data_fingerprint = data_fingerprint
        self._logged = False
        self._flops_logged = False
        self._monitor: Any = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._logged:
            return
        log_dir = trainer.log_dir  # on every rank: it broadcasts
        self._logged = True
        if not trainer.is_global_zero:
            return
        client, run_id = self.logger.experiment, self.logger.run_id
        if log_dir is not None:
            record = {"uri": self.plan.uri, "experiment_id": self.logger.experiment_id, "run_id": run_id}
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            (Path(log_dir) / TRACKING_FILE).write_text(json.dumps(record, indent=2) + "\n")
        params = {name: value for name, value in flatten_config(self.config).items() if value is not None}
        params.update(_model_summary(pl_module))
        if self.data_fingerprint is None:
            self.data_fingerprint = data_fingerprint(trainer)
        if self.data_fingerprint is not None:
            params["data.content_sha256"] = self.data_fingerprint.get("content_sha256")
            params.update({f"data.size.{k}": v for k, v in (self.data_fingerprint.get("splits") or {}).items()})
        self.logger.log_params(params)
        client.log_text(run_id, self.config_text, self.config_name)
        if self.environment is not None:
            client.log_dict(run_id, dict(self.environment), record_name(self.config_name, "env"))
        if self.data_fingerprint is not None:
            client.log_dict(run_id, dict(self.data_fingerprint), record_name(self.config_name, "data"))
        for recipe in self.recipes:
            if Path(recipe).is_file():
                client.log_artifact(run_id, recipe, "recipe")
        client.log_text(run_id, str(pl_module), "model/architecture.txt")
        for name, value in _tags(log_dir, self.environment, self.recipes).items():
            client.set_tag(run_id, name, value)
        if self.plan.system_metrics:
            self._start_system_metrics(run_id)

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._flops_logged or not trainer.is_global_zero:
            return
        self._flops_logged = True
        counter = getattr(pl_module, "training_flops", None)
        flops = counter(batch) if callable(counter) else None
        if flops is not None:
            per_sample = int(flops // max(1, int(pl_module.count_samples(batch))))
            self.logger.log_params({"model.train_flops_per_sample": per_sample})

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        saver = trainer.checkpoint_callback
        best = getattr(saver, "best_model_path", "")
        if not best:
            return
        client, run_id = self.logger.experiment, self.logger.run_id
        client.set_tag(run_id, "zoo.best_checkpoint", str(Path(best).resolve()))
        score = getattr(saver, "best_model_score", None)
        monitor = getattr(saver, "monitor", None)
        if score is not None and monitor:
            client.set_tag(run_id, "zoo.best_score", f"{monitor}={float(score):.6g}")
        if self.plan.log_checkpoints:
            client.log_artifact(run_id, best, "checkpoints")

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None

    def _start_system_metrics(self, run_id: str) -> None:
        """MLflow's system-metrics monitor on this run (Lightning's logger never starts it)."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            run_id, sampling_interval=_SYSTEM_METRICS_INTERVAL_S, resume_logging=self.plan.run_id is not None,
            tracking_uri=self.plan.uri,
        )  # fmt: skip
        self._monitor.start()


def _model_summary(module: L.LightningModule) -> dict[str, Any]:
    parameters = list(module.parameters())
    return {
        "model.parameters": sum(p.numel() for p in parameters),
        "model.trainable_parameters": sum(p.numel() for p in parameters if p.requires_grad),
        "model.class": f"{type(module).__module__}.{type(module).__qualname__}",
    }


def _tags(log_dir: str | None, environment: Mapping[str, Any] | None, recipes: list[str]) -> dict[str, str]:
    tags = {"zoo.run_folder": str(Path(log_dir).resolve()) if log_dir else ""}
    if recipes:
        tags["zoo.recipe"] = ", ".join(recipes)
    if environment is not None:
        git = environment.get("git") or {}
        tags.update(
            {
                "zoo.version": str((environment.get("zoo") or {}).get("version")),
                "zoo.command": str(environment.get("command")),
                "zoo.seed": str(environment.get("seed")),
                "mlflow.source.git.commit": str(git.get("commit")),
                "zoo.git.dirty": str(git.get("dirty")),
            }
        )
    return {name: value for name, value in tags.items() if value}
