"""Backend of the local AI video studio.

Importing this package must work on a machine without a GPU and must not import torch:
the UI imports parts of it (specs, store, orchestrator) and torch is loaded lazily by the
stages when a job actually runs.
"""

__version__ = "0.1.0"
