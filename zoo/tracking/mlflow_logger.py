"""Lightning's MLflow logger with what ``zoo fit`` needs of it.

Differences from :class:`lightning.pytorch.loggers.MLFlowLogger`, each a trap of using it as it is:

* ``save_dir`` is the zoo run folder when one is given. Lightning's logger has no local folder for a database
  or server store, so ``trainer.log_dir`` is ``None`` and LightningCLI fails to save the config when MLflow is
  the only logger;
* parameters are logged with MLflow's full value length (6,000 characters, not 250), and a resumed run does
  not fail on a parameter whose value changed (MLflow parameters cannot change): the new value is skipped
  with a warning, and the resume's own ``config.resume-N.yaml`` records it;
* no checkpoint is uploaded by the logger (Lightning's can upload the same file from ``after_save_checkpoint``
  and again from ``finalize``); :class:`zoo.tracking.record.MLflowRunRecord` uploads the best one once;
* metrics are sent asynchronously (a training step does not wait for the store) and flushed when the run ends.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

__all__ = ["ZooMLFlowLogger"]

_BATCH = 100  # MLflow's limit of parameters per log_batch call


class ZooMLFlowLogger(MLFlowLogger):
    """:class:`~lightning.pytorch.loggers.MLFlowLogger` for zoo runs (see the module's docstring).

    Args:
        experiment_name: The MLflow experiment.
        run_name: The MLflow run's name (``zoo fit``: ``<recipe name>/version_N``, as the run folder).
        tracking_uri: The tracking store.
        run_id: An existing run to log into (a resumed ``zoo fit``).
        run_dir: The zoo run folder; becomes ``save_dir`` (and so ``trainer.log_dir`` when this logger is
            the first one).
        log_module_hparams: Log the task's hyperparameters as MLflow parameters when Lightning hands them over.
            ``zoo fit`` turns it off: it logs the whole resolved config instead, which holds them.
        synchronous: Wait for the store on every logging call (``False``: queue them, flush at the end).
        **kwargs: The rest of :class:`~lightning.pytorch.loggers.MLFlowLogger`'s arguments (``tags``, ...).
    """

    def __init__(
        self,
        experiment_name: str = "zoo",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
        run_dir: str | None = None,
        log_module_hparams: bool = True,
        synchronous: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("log_model", None)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=tracking_uri,
            run_id=run_id,
            synchronous=synchronous,
            **kwargs,
        )
        self.run_dir = run_dir
        self.log_module_hparams = log_module_hparams

    @property
    @override
    def save_dir(self) -> str | None:
        return self.run_dir if self.run_dir is not None else super().save_dir

    @override
    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        if self.log_module_hparams:
            from lightning.fabric.utilities.logger import _convert_params, _flatten_dict

            self.log_params(_flatten_dict(_convert_params(params)))

    @rank_zero_only
    def log_params(self, params: Mapping[str, Any]) -> list[str]:
        """Log ``params`` (flat ``name -> value``), keeping the values the run already has.

        Returns:
            The names whose value differs from the one the run logged before (not logged again).
        """
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        logged = self.experiment.get_run(self.run_id).data.params
        fresh, changed = [], []
        for name, value in params.items():
            text = str(value)[:MAX_PARAM_VAL_LENGTH]
            if name not in logged:
                fresh.append(Param(key=name, value=text))
            elif logged[name] != text:
                changed.append(name)
        for start in range(0, len(fresh), _BATCH):
            self.experiment.log_batch(run_id=self.run_id, params=fresh[start : start + _BATCH], synchronous=True)
        if changed:
            warnings.warn(
                f"MLflow run {self.run_id} keeps its first values of {', '.join(changed)} (MLflow parameters cannot "
                "change); the values of this resumed run are in its config.resume-N.yaml",
                stacklevel=2,
            )
        return changed

    @override
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Upload nothing here: the best checkpoint is uploaded once, at the end (when asked)."""

    @override
    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if self._initialized:
            self.flush()
        super().finalize(status)

    def flush(self) -> None:
        """Wait until every queued metric has reached the store."""
        store = getattr(getattr(self._mlflow_client, "_tracking_client", None), "store", None)
        if store is not None and hasattr(store, "flush_async_logging"):
            store.flush_async_logging()
