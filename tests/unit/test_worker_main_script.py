"""A worker spawned under the console script does not run the script again (toolkit.cli.main)."""
from __future__ import annotations

import subprocess
import sys

from tests.corpora import REPO

SCRIPT = """
import sys
from toolkit.cli.main import main, workers_skip_the_main_script   # what the console script imports: the CLI
if __name__ == "__main__":
    if sys.argv[1] == "fixed":
        workers_skip_the_main_script()
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(pool.apply(eval, ("sorted(m for m in __import__('sys').modules if m in ('click', 'rich'))",)))
"""


def test_a_spawned_worker_does_not_import_the_cli_the_console_script_imported(tmp_path):
    script = tmp_path / "mailarchive"
    script.write_text(SCRIPT)
    ran = {how: subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, cwd=REPO,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
           for how in ("plain", "fixed")}
    assert "'click'" in ran["plain"].stdout, ran["plain"].stderr     # the script ran again in the worker
    assert ran["fixed"].stdout.strip() == "[]", ran["fixed"].stderr
