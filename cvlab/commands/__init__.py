"""One module per `cvlab` command, each with `main(cfg, run_dir, overrides) -> exit code`.

They take validated config dataclasses (cvlab.config), the run folder as a Path and the
command-line overrides (recorded by the runs that keep them).
"""
