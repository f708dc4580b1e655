"""Leaderboard suites: which recipes, which quality metric, and what each budget changes.

A suite is a YAML file in ``benchmarks/suites``::

    name: cora
    budgets:                      # overrides every recipe gets under that budget (``--budget``)
      cpu: ["--trainer.accelerator", "cpu"]
      gpu: ["--trainer.accelerator", "gpu"]
    recipes:
      - recipe: recipes/cora/gcn.yaml
        metric: test/acc1         # the quality figure of the row
        higher_is_better: true
        overrides: {cpu: ["--trainer.max_epochs", "100"]}   # optional, per budget
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ConfigError, MissingFileError

__all__ = ["Suite", "SuiteRecipe", "load_suite"]


@dataclass(frozen=True)
class SuiteRecipe:
    """One recipe of a suite: its path, the metric that scores it, and per-budget overrides."""

    recipe: str
    metric: str
    higher_is_better: bool = True
    overrides: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A named set of recipes with budgets; ``path`` is the suite file."""

    name: str
    path: Path
    budgets: dict[str, list[str]]
    recipes: list[SuiteRecipe]

    def overrides(self, entry: SuiteRecipe, budget: str) -> list[str]:
        """The command-line overrides of ``entry`` under ``budget``: the suite's, then the recipe's own."""
        return [*self.budgets[budget], *entry.overrides.get(budget, [])]


def load_suite(name: str, repo: Path) -> Suite:
    """Read ``benchmarks/suites/<name>.yaml`` (or a path to a suite file) and check it.

    Raises:
        FileNotFoundError: If the suite file, or a recipe it names, does not exist (the message names both).
        ValueError: For a malformed suite (missing keys, a budget-specific override for an unknown budget).
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else repo / "benchmarks" / "suites" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (repo / "benchmarks" / "suites").glob("*.yaml"))
        raise MissingFileError(f"suite {name!r} not found at {path}; suites: {', '.join(known) or 'none'}")
    raw: Any = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not raw.get("recipes") or not raw.get("budgets"):
        raise ConfigError(f"{path}: a suite needs 'budgets' and a non-empty 'recipes' list")
    budgets = {str(k): [str(a) for a in (v or [])] for k, v in raw["budgets"].items()}
    recipes = []
    for index, item in enumerate(raw["recipes"]):
        if not isinstance(item, dict) or "recipe" not in item or "metric" not in item:
            raise ConfigError(f"{path}: recipes[{index}] needs 'recipe' and 'metric'")
        if not (repo / item["recipe"]).is_file():
            raise MissingFileError(f"{path}: recipes[{index}] names {item['recipe']}, which does not exist")
        overrides = {str(k): [str(a) for a in v] for k, v in (item.get("overrides") or {}).items()}
        unknown = sorted(set(overrides) - set(budgets))
        if unknown:
            raise ConfigError(f"{path}: recipes[{index}] has overrides for unknown budgets {unknown}")
        recipes.append(SuiteRecipe(item["recipe"], item["metric"], bool(item.get("higher_is_better", True)), overrides))
    return Suite(str(raw.get("name", path.stem)), path, budgets, recipes)
