"""A3/A8 follow-up: ending the worker pool while workers are writing large results must not hang
the process at exit.

A worker killed in the middle of sending its result leaves half a message in the pool's result
pipe. Unless the pool is ended the way toolkit.ingest.kill_pool does it, the pool's manager thread
waits for the rest of that message forever and the interpreter never exits (seen as an import that
finished its work but whose process never ended). The child below keeps two workers busy sending
256 MB results and ends the pool at several moments; it must exit on its own.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time
    from concurrent.futures import ProcessPoolExecutor
    from toolkit.ingest import kill_pool

    def big(_):
        return b"x" * (256 << 20)

    if __name__ == "__main__":
        delay = float(sys.argv[1])
        pool = ProcessPoolExecutor(max_workers=2)
        futures = [pool.submit(big, i) for i in range(64)]
        time.sleep(delay)
        kill_pool(pool)
        print("ended", flush=True)
""")


@pytest.mark.parametrize("delay", [0.8, 1.1, 1.4])
def test_pool_killed_mid_result_lets_the_process_exit(tmp_path, delay):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    try:
        done = subprocess.run([sys.executable, str(script), str(delay)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process did not exit within 60 s after its pool was killed at {delay} s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ended" in done.stdout
