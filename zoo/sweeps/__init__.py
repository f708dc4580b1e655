"""Hyperparameter sweeps over recipes: ``zoo tune`` (Optuna on one machine).

Importing this package imports no Optuna; :mod:`.space` reads sweep files, :mod:`.study` runs them.
"""

from zoo.sweeps.space import Param, SweepSpec, read_sweep

__all__ = ["Param", "SweepSpec", "read_sweep"]
