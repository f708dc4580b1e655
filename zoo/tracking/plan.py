"""Where a tracked run goes, decided and checked before anything of the run is written.

The embedded default needs no server: an SQLite store beside the run folders, ``sqlite:///<runs>/mlflow.db``
(MLflow's plain file store is deprecated, and refused by recent releases). ``--tracking_uri`` or
``MLFLOW_TRACKING_URI`` point at a shared tracking server instead; an unreachable server is an error that
names it before training starts. A run folder remembers its MLflow run in ``tracking.json``, so a resumed
``zoo fit`` keeps logging into the same MLflow run.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from zoo.errors import ConfigError, MissingExtraError, UsageError

__all__ = ["BACKENDS", "TRACKING_FILE", "TrackingPlan", "default_tracking_uri", "plan_tracking", "read_tracking_file"]

BACKENDS = ("none", "mlflow")
TRACKING_FILE = "tracking.json"
_HEALTH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TrackingPlan:
    """A run's place in MLflow.

    Attributes:
        uri: The tracking store (``sqlite:///...``, ``http://host:5000``, ...).
        experiment: The MLflow experiment (by default the run's name: all versions of a recipe side by side).
        run_id: The MLflow run that a resumed run continues; ``None`` starts a new one.
        log_checkpoints: Also upload the best checkpoint as an artifact at the end of ``fit``.
        system_metrics: Log CPU, memory (and GPU) utilisation as MLflow system metrics.
        parent_run: The MLflow run this run is nested under (a sweep's), if any.
        artifact_location: Where a new experiment keeps its runs' files: beside an SQLite store (``mlartifacts``
            next to the database, not ``./mlruns`` of whatever folder the run started in); a server decides its
            own (``None``).
    """

    uri: str
    experiment: str | None = None
    run_id: str | None = None
    log_checkpoints: bool = False
    system_metrics: bool = False
    artifact_location: str | None = None
    parent_run: str | None = None


def default_tracking_uri(root: str | os.PathLike[str]) -> str:
    """The embedded store of the runs under ``root``: ``sqlite:///<absolute root>/mlflow.db``."""
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def plan_tracking(
    backend: str | None,
    uri: str | None,
    root: str | os.PathLike[str],
    resumed: Path | None = None,
    experiment: str | None = None,
    log_checkpoints: bool = False,
    system_metrics: bool = False,
    parent_run: str | None = None,
) -> TrackingPlan | None:
    """Check the tracking settings of a run and decide its store and MLflow run.

    Args:
        backend: ``--tracking``: ``"mlflow"``, or ``"none"``/``None`` for no tracking.
        uri: ``--tracking_uri``; default ``MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri` of ``root``.
        root: The runs' root folder (``runs/`` or ``--trainer.default_root_dir``).
        resumed: The run folder a resumed ``fit`` continues in; its ``tracking.json`` names the MLflow run.
        experiment: ``--tracking_experiment`` (``None``: the run's name, filled in later).
        log_checkpoints: ``--tracking_checkpoints``.
        system_metrics: ``--tracking_system_metrics``.
        parent_run: ``--tracking_parent_run``.

    Returns:
        The plan, or ``None`` when the run is not tracked.

    Raises:
        ConfigError: For an unknown backend.
        MissingExtraError: When MLflow is not installed (naming the extra that installs it).
        UsageError: When the tracking server does not answer (naming it); nothing has been written then.
    """
    if backend in (None, "none"):
        return None
    if backend not in BACKENDS:
        raise ConfigError(f"--tracking {backend!r}: choose one of {', '.join(BACKENDS)}")
    if find_spec("mlflow") is None:
        raise MissingExtraError("--tracking mlflow needs MLflow: pip install 'lightning-zoo[tracking]'")
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)
    _check_store(uri)
    run_id = None
    if resumed is not None:
        record = read_tracking_file(resumed)
        if record is not None and record.get("uri") == uri:
            run_id = record.get("run_id")
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return TrackingPlan(uri, experiment, run_id, log_checkpoints, system_metrics, artifacts, parent_run)


def read_tracking_file(run_folder: Path) -> dict[str, str] | None:
    """The ``tracking.json`` of a run folder (``{"uri", "experiment_id", "run_id", ...}``), if it has one."""
    path = run_folder / TRACKING_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: unreadable ({err}); delete it to start a new MLflow run") from err
    return record if isinstance(record, dict) else None


def _check_store(uri: str) -> None:
    """Fail early, naming ``uri``, when the store cannot be used.

    That is a server that does not answer its health check, or an SQLite file whose folder cannot be made.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=_HEALTH_TIMEOUT_S) as answer:
                ok = answer.status == 200
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise UsageError(
                f"tracking server {uri} is unreachable ({reason}); start it (mlflow server --host 127.0.0.1 "
                "--port 5000 --backend-store-uri sqlite:///mlflow.db) or choose another --tracking_uri. "
                "Nothing was written."
            ) from None
        if not ok:
            raise UsageError(f"tracking server {uri} answered its health check with status {answer.status}")
    elif parsed.scheme == "sqlite":
        database = Path(uri.removeprefix("sqlite:///"))
        folder = next((p for p in [database.parent, *database.parent.parents] if p.exists()), Path("."))
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(f"tracking store {uri}: cannot create {database} ({folder} is not a writable folder)")
