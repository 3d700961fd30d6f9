"""ui.table: rich for a table a person reads; plain aligned columns, a row a line, for one too long to read by eye
(toolkit/cli/output.py PLAIN_ROWS)."""
from __future__ import annotations

from toolkit.cli import output
from toolkit.cli.output import PLAIN_ROWS, Ui


def _rows(n: int) -> list[list]:
    return [[i, f"<m{i}@example.org>", None if i % 7 else "held", "x" * (i % 13)] for i in range(n)]


def test_a_long_table_is_one_line_a_row_with_every_cell_whole(capsys):
    rows = _rows(PLAIN_ROWS + 1)
    rows[5][1] = "<evil\x1b[2J\r\nid@example.org>"
    Ui().table("Retention", ["msg", "Message-ID", "state", "policy"], rows)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Retention" and lines[1].split() == ["msg", "Message-ID", "state", "policy"]
    assert set(lines[2].replace(" ", "")) == {"-"} and len(lines) == 3 + len(rows)
    for row, text in zip(rows, lines[3:]):
        want = ["" if v is None else str(v) for v in row]
        assert text.split() == " ".join(want).replace("\x1b", " ").replace("\r", " ").replace("\n", " ").split()
    assert "\x1b" not in "".join(lines) and lines[3 + 5].split()[1:3] == ["<evil", "[2J"]
    starts = {line.index("<m") for line in lines[3:] if "<m" in line}
    assert len(starts) == 1  # the columns are aligned
    assert not any(line.endswith(" ") for line, row in zip(lines[3:], rows) if row[-1])  # the last column unpadded


def test_a_short_table_is_rich_s(capsys, monkeypatch):
    called = []
    monkeypatch.setattr(output, "_plain_table", lambda *a: called.append(a))
    Ui().table("Media", ["id", "location"], [[1, "/m/1"], [2, "smb://h/s"]])
    out = capsys.readouterr().out
    assert not called and ("┃" in out or "│" in out) and "smb://h/s" in out
