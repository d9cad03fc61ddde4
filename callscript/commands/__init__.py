"""One module per ``callscript`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
