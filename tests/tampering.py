"""Small helpers the tests share to damage files and watch processes."""
from __future__ import annotations

from pathlib import Path


def flip_bit(path: Path, offset: int) -> None:
    """Flip the lowest bit of the byte at ``offset`` of ``path`` in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def child_pids(pid: int) -> set[int]:
    """The direct children of process ``pid`` (every thread's), from /proc."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out
