"""RELIABILITY F6: `verify --subset`, a sampled full verification that rotates over the packs.

One small unstamped archive of six packs; each test works on a copy. A subset run reads only the
packs it chose (a flipped bit is found only when its pack is among them), the same seed and
history choose the same packs, and k runs of 1/k read every pack, least recently verified first.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.integration.verify_support import build_archive, clone, messages, run_verify
from tests.tampering import flip_bit as _flip
from toolkit.home import VERIFY_STATE_NAME


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify-subset-base")
    build_archive(root, None, stamp=False)
    return root


@pytest.fixture
def home(base, tmp_path) -> Path:
    return clone(base, tmp_path / "copy")


def _packs(home: Path) -> dict[str, str]:
    """pack name on the medium -> pack id"""
    medium = home.parent / "medium"
    return {str(r["pack"].relative_to(medium)): r["pack_id"] for r in messages(home).values()}


def test_f6_subset_reads_only_the_chosen_packs(home):
    packs = _packs(home)
    assert len(packs) == 6, packs
    victim = messages(home)[5]
    victim_name = str(victim["pack"].relative_to(home.parent / "medium"))
    _flip(victim["pack"], victim["offset"] + victim["length"] // 2)
    state = home / VERIFY_STATE_NAME
    seen: dict[bool, int] = {}
    for seed in range(40):  # one pack per run, so some seeds pick the victim's pack and some do not
        state.unlink(missing_ok=True)  # no history: the seed alone decides
        r = run_verify(home, full=False, subset="1", seed=seed)
        chosen = r.stats["subset"]["packs"]
        assert len(chosen) == 1 and r.stats["subset"]["packs_total"] == 6
        assert r.stats["bytes_read"] == (home.parent / "medium" / chosen[0]).stat().st_size  # that pack, no other
        hit = chosen == [victim_name]
        assert r.exit_code == (1 if hit else 0), (seed, chosen, victim_name)
        if hit:
            assert [i["msg_id"] for i in r.get("F02").items] == [5]
        seen.setdefault(hit, seed)
        if len(seen) == 2:
            break
    assert set(seen) == {True, False}, seen
    # deterministic: the same seed and the same (empty) history choose the same pack again
    for hit, seed in seen.items():
        state.unlink(missing_ok=True)
        assert (run_verify(home, full=False, subset="1", seed=seed).stats["subset"]["packs"] == [victim_name]) is hit
    # quick verify still reads no pack; a plain full run finds it whatever the history
    assert run_verify(home, full=False).exit_code == 0
    assert run_verify(home).exit_code == 1


def test_f6_k_runs_of_one_kth_cover_every_pack_then_start_over(home, tmp_path):
    packs = _packs(home)
    victim = messages(home)[12]
    victim_name = str(victim["pack"].relative_to(home.parent / "medium"))
    _flip(victim["pack"], victim["offset"] + 7)
    runs = []
    html = tmp_path / "r.html"
    for _ in range(3):  # 1/3 of 6 packs: two per run, through the real command
        p = mailarchive(home, "verify", "--subset", "1/3", "--seed", "7", "--html-report", str(html), json_out=True,
                        check=None)
        assert "2 of 6 packs read" in html.read_text()
        sub = p.result["stats"]["subset"]
        assert sub["packs_read"] == 2 and sub["packs_total"] == 6 and p.result["mode"] == "full"
        assert p.returncode == (1 if victim_name in sub["packs"] else 0), (sub, p.stderr)
        runs.append(sub["packs"])
    assert sorted(n for r in runs for n in r) == sorted(packs)  # every pack once, none twice
    # the fourth run starts over with the packs read longest ago: those of the first run
    again = run_verify(home, full=False, subset="33%", seed=7)
    assert again.stats["subset"]["packs"] == runs[0]
    # a plain --full run reads all and so counts as the most recent read of every pack
    run_verify(home)
    assert run_verify(home, full=False, subset="50%", seed=7).stats["subset"]["packs_read"] == 3


def test_f6_subset_usage_errors_exit_2(home):
    for args in (["--seed", "3"], ["--subset", "0"], ["--subset", "150%"], ["--subset", "a tenth"], ["--subset", "1/0"]):
        p = mailarchive(home, "verify", *args, check=2)
        assert "--s" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (home / VERIFY_STATE_NAME).exists()
