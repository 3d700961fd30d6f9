"""The ``mailarchive`` command line: the top layer of the toolkit.

Nothing outside this package imports it (tests/unit/test_cli_layer.py checks that): the core
(``toolkit/`` outside ``cli/``, ``importers/``, ``exporters/``, ``verify/``, ``media_tools/``)
raises errors and returns results; this layer reads the environment, prints, adds command hints
to errors and turns them into exit statuses.

Layout
------
``main.py``
    the ``mailarchive`` group, its global options, the lazy command loader and the one place
    where an error becomes an exit status.
``early.py``
    worker processes started before ``main.py`` loads click and rich: ``verify --full``'s (forked) and an
    import's (spawned).
``output.py``, ``progress.py``, ``runlog.py``, ``passwords.py``, ``problems.py``,
``export_filters.py``, ``export_mode.py``, ``environment.py``, ``hints.py``, ``demo_tsa.py``
    pieces shared by several commands (terminal and JSON output, progress, the run log, secrets,
    options shared by export and verify, the environment, next-step hints, the demo's TSA).
``commands/``
    the command modules, named after the command tree:

    * ``commands/<command>.py`` defines the top-level command or group ``<command>``
      (a ``-`` in the name becomes ``_``: ``mirror-status`` → ``mirror_status.py``);
    * ``commands/<group>_<subcommands>.py`` adds further subcommands to ``<group>``, named after
      them or their family (``import_mbox.py``, ``import_imap_pop3.py``, ``export_formats.py``);
      a group whose name is a Python keyword (``import``) is created by the first such module
      (``import_eml.py``), as is ``export`` (``export_eml.py``).

    A few commands live with the command they belong to: ``restore`` and ``schedule`` in
    ``mirror.py``, ``verify-evidence`` in ``verify.py``,
    ``import source`` (runs a configured source) in ``config.py``.
    ``main.COMMAND_MODULES`` lists, per top-level command, the modules to import;
    ``main.SUBCOMMAND_MODULES`` narrows that for ``import`` to the module that makes the group and
    the module of the one subcommand that runs (``import mbox`` loads no other importer).
"""
