"""A fleet of GPU workers on Ray for batch manifests (``./launch.sh fleet``).

``jobs`` holds the typed records (a job, a worker's result, the line printed per job) and the ledger
of finished jobs; ``worker`` is the body of one Ray actor (one per GPU, a ``JobRunner`` with its
models resident between jobs); ``driver`` starts Ray, feeds jobs to free workers, retries a job whose
worker died and collects the files. Only ``driver`` imports Ray; the studio never imports this package.
"""
