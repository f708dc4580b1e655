"""``zoo serve``: an exported artifact or a checkpoint behind HTTP, built on LitServe.

    zoo serve exported/speedrun_net_tiny.onnx --max_batch_size 32 --api_key_env ZOO_API_KEY

Modules, in the order a request meets them: :mod:`~export.serve.gate` (auth, draining, backpressure, limits,
timeouts, metrics) and :mod:`~export.serve.requests` (each body checked and put in one shape) in the HTTP
process; :mod:`~export.serve.workers` (LitServe APIs: batching, the model, drift) in the inference workers;
:mod:`~export.serve.model` (what is served), :mod:`~export.serve.drift`, :mod:`~export.serve.metrics`;
:mod:`~export.serve.server` starts and drains it all; :mod:`~export.serve.deploy` writes the container and
Kubernetes files. Nothing here is imported by ``import zoo`` or ``import export``.
"""
