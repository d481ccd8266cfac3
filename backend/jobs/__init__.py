"""The job layer: queue and worker, the stage sequence, checkpoints, housekeeping, ETA, store, outputs."""
