"""Evaluation beyond accuracy: ``zoo evaluate`` and ``zoo compare`` (per-class figures, calibration, intervals).

Importing this package imports no plotting library; :mod:`.classification` computes the figures,
:mod:`.predictions` collects a checkpoint's predictions on a split, :mod:`.report` writes and prints them.
"""
