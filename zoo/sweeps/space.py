"""A sweep file: the recipe it searches, the metric, and the search space keyed by ``zoo fit``'s dotted keys.

.. code-block:: yaml

    recipe: recipes/cora/gcn.yaml          # relative to the sweep file's folder, else the working directory
    metric: val/acc1                       # default: the task's own monitor, with its direction;
                                           # [val/acc1, params]: also as few parameters as possible (NSGA-II);
                                           # [val/acc1, latency_ms]: also as fast as possible
    space:
      model.init_args.optimizer.init_args.lr: {loguniform: [1.0e-3, 1.0e-1]}
      model.init_args.backbone_kwargs.dropout: {uniform: [0.0, 0.8]}
      model.init_args.backbone_kwargs.hidden_channels: {choice: [16, 32, 64]}
      data.init_args.batch_size: {int: [16, 128], step: 16}       # also `log: true`
      trainer.max_epochs: 100                                     # a fixed value
      model.init_args.optimizer.init_args.momentum:               # used only when the condition holds
        uniform: [0.8, 0.99]
        when: {model.init_args.optimizer.class_path: torch.optim.SGD}

Types: ``uniform``, ``loguniform`` (bounds ``[low, high]``), ``int`` (with ``step`` and ``log``), ``choice``
(a list), and plain values. Everything here is checked when the file is read; whether the recipe accepts each
key is checked by :mod:`zoo.sweeps.study` before any trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ConfigError, MissingFileError

__all__ = ["OBJECTIVES", "Param", "SweepSpec", "read_sweep"]

_KINDS = ("uniform", "loguniform", "int", "choice")
OBJECTIVES = ("params", "latency_ms")  # what a multi-objective sweep can minimise beside the metric


@dataclass(frozen=True)
class Param:
    """One searched key.

    Attributes:
        key: The dotted ``zoo fit`` key (``model.init_args.optimizer.init_args.lr``).
        kind: ``uniform``, ``loguniform``, ``int``, ``choice`` or ``fixed``.
        values: ``(low, high)`` for ranges, the candidates for ``choice``, ``(value,)`` for ``fixed``.
        step: The step of an ``int`` range (or of a ``uniform`` one, when given).
        log: Sample an ``int`` range on a log scale.
        when: ``{key: value}`` that must all hold (in the fixed or already sampled values) for this key to be used.
    """

    key: str
    kind: str
    values: tuple[Any, ...]
    step: float | None = None
    log: bool = False
    when: dict[str, Any] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna ``trial`` draws for this key."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        low, high = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, int(low), int(high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(low), float(high), log=self.kind == "loguniform", step=self.step)


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file.

    Attributes:
        path: The sweep file.
        recipe: The recipe searched.
        metric: The metric the trials are ranked by (``None``: the task's default monitor).
        objectives: Further objectives, minimized, for a multi-objective sweep: ``params`` (trainable
            parameters of the trial's model) and ``latency_ms`` (its measured inference latency, see
            :func:`zoo.sweeps.study.objective_value`).
        direction: ``"maximize"`` or ``"minimize"`` (``None``: the task's, with its default monitor).
        params: The searched and fixed keys, in file order.
    """

    path: Path
    recipe: Path
    metric: str | None
    direction: str | None
    params: tuple[Param, ...]
    objectives: tuple[str, ...] = ()

    def sample(self, trial: Any) -> dict[str, Any]:
        """The overrides of one trial: each key whose condition holds, drawn in file order."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if all(chosen.get(key, _fixed(self, key)) == value for key, value in param.when.items()):
                chosen[param.key] = param.suggest(trial)
        return chosen


def _fixed(spec: SweepSpec, key: str) -> Any:
    for param in spec.params:
        if param.key == key and param.kind == "fixed":
            return param.values[0]
    return _MISSING


_MISSING = object()


def read_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file.

    Raises:
        MissingFileError: When the sweep file or its recipe does not exist.
        ConfigError: Naming the key and the problem: an unknown type, bounds in the wrong order or not
            positive for a log scale, an empty choice or space, a condition on a key the space does not have.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"sweep file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with recipe, metric and space")
    unknown = sorted(set(raw) - {"recipe", "metric", "direction", "space"})
    if unknown:
        expected = "recipe, metric, direction, space"
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (expected {expected})")
    if "recipe" not in raw:
        raise ConfigError(f"{path}: no recipe: name the recipe the sweep searches (recipe: recipes/cora/gcn.yaml)")
    recipe = _find_recipe(path, str(raw["recipe"]))
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: the space is empty; give at least one key to search")
    params = tuple(_param(path, str(key), value) for key, value in space.items())
    if not any(p.kind != "fixed" for p in params):
        raise ConfigError(f"{path}: every key of the space is fixed; give at least one to search")
    keys = {p.key for p in params}
    for param in params:
        missing = [key for key in param.when if key not in keys]
        if missing:
            raise ConfigError(f"{path}: {param.key}: its condition names {', '.join(missing)}, which the space lacks")
    direction = raw.get("direction")
    if direction not in (None, "maximize", "minimize"):
        raise ConfigError(f"{path}: direction must be maximize or minimize, got {direction!r}")
    metric, objectives = raw.get("metric"), ()
    if isinstance(metric, list) and metric and all(isinstance(m, str) for m in metric):
        metric, objectives = metric[0], tuple(metric[1:])
        unknown_objectives = [o for o in objectives if o not in OBJECTIVES]
        if unknown_objectives:
            raise ConfigError(
                f"{path}: metric {unknown_objectives}: after the first metric come objectives to minimise: "
                f"{', '.join(OBJECTIVES)}"
            )
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(
            f"{path}: metric must be a metric name (val/acc1) or a list ([val/acc1, params]), got {metric!r}"
        )
    return SweepSpec(path, recipe, metric, direction, params, objectives)


def _find_recipe(sweep: Path, recipe: str) -> Path:
    for candidate in (sweep.parent / recipe, Path(recipe)):
        if candidate.is_file():
            return candidate
    raise MissingFileError(f"{sweep}: recipe {recipe} not found (looked beside the sweep file and in {Path.cwd()})")


def _param(path: Path, key: str, value: Any) -> Param:
    where = f"{path}: {key}"
    if not isinstance(value, dict) or not set(value) & set(_KINDS):
        return Param(key, "fixed", (value,))
    kinds = [kind for kind in _KINDS if kind in value]
    extra = sorted(set(value) - {*_KINDS, "step", "log", "when"})
    if len(kinds) > 1 or extra:
        raise ConfigError(f"{where}: give one of {', '.join(_KINDS)} (with step, log, when); got {sorted(value)}")
    kind, bounds = kinds[0], value[kinds[0]]
    when = value.get("when") or {}
    if not isinstance(when, dict):
        raise ConfigError(f"{where}: when must map keys to values, got {when!r}")
    if kind == "choice":
        if not isinstance(bounds, list) or not bounds:
            raise ConfigError(f"{where}: choice needs a non-empty list of candidates")
        return Param(key, kind, tuple(bounds), when=dict(when))
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)):
        raise ConfigError(f"{where}: {kind} needs [low, high] numbers, got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise ConfigError(f"{where}: {kind} bounds must satisfy low < high, got [{low}, {high}]")
    log = bool(value.get("log", False)) or kind == "loguniform"
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
    step = value.get("step")
    if step is not None and (not _number(step) or step <= 0 or (kind == "loguniform")):
        raise ConfigError(f"{where}: step must be a positive number (and not on a log scale), got {step!r}")
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ConfigError(f"{where}: int bounds must be whole numbers, got {bounds}")
    return Param(key, kind, (low, high), step, log and kind == "int", dict(when))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
