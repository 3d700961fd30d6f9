"""Migration plans: many sources imported in one run, read in parallel, committed by one writer
(docs/cli.md ``migrate``, docs/architecture.md).

:mod:`.plan` parses and validates a plan file, :mod:`.sources` turns a plan line into an importer,
:mod:`.check` tries every line without importing, :mod:`.schedule` runs the plan and
:mod:`.report` holds the outcome (JSON and a self-contained HTML page).
"""
