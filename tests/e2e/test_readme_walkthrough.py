"""The README's walk-through works when pasted into a new shell (issue 7), and so does the
data-protection officer's (issue 8).

The `bash` block under "## Try it", and the one under "## Data protection" after it, run as
written — `make -s token …`, curl, python3, the
wait for the case to open — in a fresh `bash`, against the five services of the test stack.
Only what must differ is replaced: the services' addresses (the stack's own ports) and the
scratch files (this test's temporary directory, not a shared `/tmp`).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def walkthrough(heading: str = "## Try it") -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"the README's {heading!r} section has no bash block"
    return match.group(1)


def run_blocks(stack: Stack, tmp_path: Path, *headings: str) -> subprocess.CompletedProcess[str]:
    """The README's blocks, one after the other in one fresh bash, against the stack."""
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        registered = supervision.post("/sites", json={"site": "north", "name": "North"})
        assert registered.status_code in (201, 409), registered.text
    script = (
        "\n".join(walkthrough(h) for h in headings)
        .replace("http://127.0.0.1:8001", stack.urls["intake"])
        .replace("http://127.0.0.1:8002", stack.urls["cases"])
        .replace("http://127.0.0.1:8003", stack.urls["contacts"])
        .replace("/tmp/", f"{tmp_path}/")
    )
    # The services must have heard of the site before the referral is taken: the README
    # assumes `make up`, which registers it before it prints anything.
    env = {**stack.env}
    wait = (
        f"for _ in $(seq 100); do curl -sf -o /dev/null '{stack.urls['intake']}/intake-queue"
        f'?site=north\' -H "Authorization: Bearer $(make -s token ROLE=regional_admin)" '
        "&& break; sleep 0.3; done\n"
    )
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", wait + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.timeout(240)
def test_the_readme_walkthroughs_work_when_pasted(stack: Stack, tmp_path: Path) -> None:
    # one shell for both: the officer's block goes on from the walk-through's client (and
    # erases it, so that the walk-through's duplicate check finds no one the next time)
    run = run_blocks(stack, tmp_path, "## Try it", "## Data protection")
    accepted = json.loads((tmp_path / "accepted.json").read_text())
    out = run.stdout
    assert f'"case_id":"{accepted["case_id"]}"' in out, out[-3000:]
    assert '"phase":"assessment"' in out  # the case, read right after it opened
    assert '"entries":[' in out  # its timeline
    assert "Not Found" not in out

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
