"""Running the README's `bash` blocks as written against a test stack (the e2e tests that
keep the README true). Only what must differ is replaced: the services' addresses (the
stack's own ports) and the scratch files (the test's temporary directory, not `/tmp`)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from casework.devstack import Stack

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "8001": "intake",
    "8002": "cases",
    "8003": "contacts",
    "8004": "supervision",
    "8005": "notifications",
}


def block(heading: str) -> str:
    """The first `bash` block after `heading` in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"the README's {heading!r} section has no bash block"
    return match.group(1)


def run_blocks(
    stack: Stack,
    tmp_path: Path,
    *headings: str,
    replace: Mapping[str, str] | None = None,
    timeout: float = 170,
) -> subprocess.CompletedProcess[str]:
    """The README's blocks under `headings`, one after the other in one fresh bash, against
    the stack; `replace` changes more text (e.g. a name of the test's own). Fails the test
    with the output's tail if the script fails."""
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        registered = supervision.post("/sites", json={"site": "north", "name": "North"})
        assert registered.status_code in (201, 409), registered.text
    script = "\n".join(block(h) for h in headings)
    for port, service in PORTS.items():
        if service in stack.urls:
            script = script.replace(f"http://127.0.0.1:{port}", stack.urls[service])
    script = script.replace("/tmp/", f"{tmp_path}/")
    for old, new in (replace or {}).items():
        assert old in script, f"{old!r} is not in the README's blocks"
        script = script.replace(old, new)
    # The services must have heard of the site before the referral is taken: the README
    # assumes `make up`, which registers it before it prints anything.
    wait = (
        f"for _ in $(seq 100); do curl -sf -o /dev/null '{stack.urls['intake']}/intake-queue"
        f'?site=north\' -H "Authorization: Bearer $(make -s token ROLE=regional_admin)" '
        "&& break; sleep 0.3; done\n"
    )
    # traced (`-x`, to stderr, shown only on failure): a block that hangs names its line
    try:
        run = subprocess.run(
            ["bash", "-xeuo", "pipefail", "-c", wait + script],
            cwd=ROOT,
            env={**stack.env, "PS4": "+ line ${LINENO}: "},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as slow:
        out, err = (_text(slow.stdout), _text(slow.stderr))
        raise AssertionError(
            f"the README's blocks did not finish in {timeout:.0f} s\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
