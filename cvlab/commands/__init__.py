"""One module per `cvlab` command, each with `main(cfg, run_dir) -> exit code`.

They take validated config dataclasses (cvlab.config) and the run folder as a Path.
"""
