"""``python -m zoo`` runs the ``zoo`` command (Lightning's DDP launcher re-runs it this way too)."""

from zoo.cli import main

main()
