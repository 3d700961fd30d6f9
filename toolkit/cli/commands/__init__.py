"""The command modules of ``mailarchive``, one per top-level command or group of subcommands;
the naming scheme is described in ``toolkit/cli/__init__.py``."""
