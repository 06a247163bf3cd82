"""Subcommands beyond the core ones in workbench.cli, one module each with `register(subparsers)`."""
