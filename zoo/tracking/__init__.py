"""Experiment tracking: ``zoo fit --tracking mlflow`` logs each run to MLflow beside its TensorBoard files.

Importing this package costs nothing; MLflow is imported only when a run tracks to it. :mod:`.plan` decides
where a run goes (store, experiment, run, and the run it resumes) and checks the store before anything is
written; :mod:`.mlflow_logger` is Lightning's MLflow logger with zoo's fixes; :mod:`.record` logs what makes a
run reproducible (config, recipe, environment, model summary, best checkpoint).
"""

from zoo.tracking.plan import TRACKING_FILE, TrackingPlan, default_tracking_uri, plan_tracking

__all__ = ["TRACKING_FILE", "TrackingPlan", "default_tracking_uri", "plan_tracking"]
