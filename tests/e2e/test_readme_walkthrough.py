"""The README's walk-through works when pasted into a new shell (issue 7), and so does the
data-protection officer's (issue 8).

The `bash` block under "## Try it", the supervision session under "## Supervision" and the
officer's under "### Erasure, legal holds and retention" after them, run as
written — `make -s token …`, curl, python3, the
wait for the case to open — in a fresh `bash`, against the five services of the test stack.
Only what must differ is replaced: the services' addresses (the stack's own ports) and the
scratch files (this test's temporary directory, not a shared `/tmp`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.readme import run_blocks
from support.stack import Stack


@pytest.mark.timeout(300)
def test_the_readme_walkthroughs_work_when_pasted(stack: Stack, tmp_path: Path) -> None:
    # one shell for both: the officer's block goes on from the walk-through's client (and
    # erases it, so that the walk-through's duplicate check finds no one the next time)
    run = run_blocks(
        stack,
        tmp_path,
        "## Try it",
        "## Supervision",
        "### Erasure, legal holds and retention",
        timeout=220,
    )
    accepted = json.loads((tmp_path / "accepted.json").read_text())
    out = run.stdout
    assert f'"case_id":"{accepted["case_id"]}"' in out, out[-3000:]
    assert '"phase":"assessment"' in out  # the case, read right after it opened
    assert '"entries":[' in out  # its timeline
    assert "Not Found" not in out

    # the supervision session: prepared, reviewed, held and acknowledged; on sue's board
    session = json.loads((tmp_path / "session.json").read_text())
    assert f'"session_id":"{session["session_id"]}"' in out
    assert '"status":"acknowledged"' in out, out[-3000:]
    board = json.loads((tmp_path / "board.json").read_text())
    [carl] = [w for w in board["workers"] if w["worker_id"] == "carl"]
    # (the stack is shared: the other README tests give carl cases and sessions of their own)
    assert accepted["case_id"] in carl["case_ids"]
    assert carl["action_items_open"] >= 1
    assert carl["last_supervision_at"]

    # the officer's: refused while the case was open, naming it
    assert f'"holds":[{{"kind":"open_case","id":"{accepted["case_id"]}"' in out, out[-3000:]
    # then carried out, with its proof record
    erasure = json.loads((tmp_path / "erasure.json").read_text())
    assert (erasure["outcome"], erasure["status"]) == ("carried_out", "completed"), erasure
    assert erasure["key_ids"]
    assert out.count(f'"erasure_id":"{erasure["erasure_id"]}"') >= 3  # answer, proof, list
    # and the referral shows the client erased
    referral = json.loads(out[out.rindex('{"referral_id"') :])
    assert referral["client"]["given_name"] == "[erased]"
    assert referral["presenting_concerns"] == "[erased]"
