"""The records of runs: a run folder's files and their names (files), summary.json (summary),
metrics.csv (metrics), checkpoints and weights that cannot run code when read (state), where
run folders are (folders) and a sweep's records (sweeps). Everything below the config layer
and the run core reads and writes run folders through these modules.
"""
