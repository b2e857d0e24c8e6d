"""The command line of `run_network.py`: its flags, their checks, and what a parsed command line starts.

Nothing below `training.cli` imports it: the library takes typed options, the command line builds them.

Modules:
    flags    the flags of `run_network.py` (the original's names), grouped as in the original.
    launch   after parsing: distribution strategy, option resolution, run folders, resume checks.
    project  `generate.py --project`: its flags, checks, the run and the report.
    cluster  multi-worker start-up: `TF_CONFIG` checked before TensorFlow starts, a deadline for the other workers.
"""
