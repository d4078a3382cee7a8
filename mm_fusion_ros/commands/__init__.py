"""Sub-commands of `mm-fusion`; each module has `add_arguments(parser)` and `run(args)`."""
