"""Metrics that torchmetrics does not give ready-made: FID on features zoo can provide offline."""
