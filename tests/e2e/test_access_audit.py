"""The access audit from a real run (issue 8): a client's case is read by their caseworker,
their supervisor (through a caseload) and, in an emergency, by a crisis worker from another
site; `casework audit` then answers "who saw this client's data, when and why" and "what did
this person look at" from the audit store, as a data-protection officer would ask."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.audit import clients_shown, wait_for_records
from support.directory import assign_case, register_staff
from support.polling import eventually
from support.readme import run_blocks
from support.stack import Stack

NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}
ROOT = Path(__file__).resolve().parents[2]


def register_site(stack: Stack, name: str) -> str:
    code = f"{name}-{uuid.uuid4().hex[:6]}"
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        created = supervision.post("/sites", json={"site": code, "name": name.title()})
        assert created.status_code == 201, created.text
    with stack.client("intake", admin) as intake:
        probe = eventually(
            lambda: intake.get("/intake-queue", params={"site": code}),
            lambda r: r.status_code == 200,
        )
        assert probe.status_code == 200, probe.text
    return code


def casework(stack: Stack, *args: str) -> str:
    cli = shutil.which("casework", path=str(Path(sys.executable).parent)) or "casework"
    done = subprocess.run([cli, *args], env=stack.env, capture_output=True, text=True, check=True)
    return done.stdout


def test_the_cli_answers_who_saw_a_client_and_what_a_person_looked_at(stack: Stack) -> None:
    home, away = register_site(stack, "dpo-home"), register_site(stack, "dpo-away")
    family_name = f"Audit{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    ivy = stack.token("ivy-dpo", "intake_worker", sites=(home,))
    with stack.client("intake", ivy) as intake:
        client = {"given_name": "Robin", "family_name": family_name, "date_of_birth": "1985-06-01"}
        taken = intake.post(
            "/referrals",
            json={
                "site": home,
                "client": client,
                "source": "self",
                "presenting_concerns": "Not sleeping, hopeless.",
                "urgency": "soon",
            },
        )
        assert taken.status_code == 201, taken.text
        rid = taken.json()["referral_id"]
        assert intake.post(f"/referrals/{rid}/screening", json=NO_RISK).status_code == 200
        # read before acceptance: it shows the referral's person (`person:<uuid>`), linked to
        # the client only when the referral is accepted
        assert intake.get(f"/referrals/{rid}").status_code == 200
        accepted = intake.post(f"/referrals/{rid}/accept")
        assert accepted.status_code == 200, accepted.text
    case_id, client_id = accepted.json()["case_id"], accepted.json()["client_id"]
    worker = f"cara-{uuid.uuid4().hex[:6]}"
    manager = stack.token("mia-dpo", "site_manager", sites=(home,))
    cara = stack.token(worker, "caseworker", sites=(home,), team="t-dpo")
    sue = stack.token("sue-dpo", "supervisor", sites=(home,), team="t-dpo")
    cris = stack.token("cris-dpo", "crisis_worker", sites=(away,))
    with stack.client("supervision", stack.token("root", "regional_admin")) as directory:
        register_staff(directory, worker, "caseworker", sites=[home], team="t-dpo")
    with stack.client("cases", manager) as cases:
        eventually(lambda: cases.get(f"/cases/{case_id}"), lambda r: r.status_code == 200)
        assigned = assign_case(cases, case_id, worker, "t-dpo")
        assert assigned.status_code == 200, assigned.text
    with stack.client("cases", cara) as cases:
        read = cases.get(f"/cases/{case_id}", headers={"X-Purpose-Of-Use": "direct-care"})
        assert read.status_code == 200, read.text
    with stack.client("cases", sue) as cases:
        caseload = eventually(
            lambda: cases.get(f"/caseloads/{worker}", headers={"X-Request-ID": f"sue-{worker}"}),
            lambda r: bool(r.json()["cases"]),
        )
        assert [c["case_id"] for c in caseload.json()["cases"]] == [case_id]
    with stack.client("cases", cris) as cases:
        emergency = cases.get(f"/cases/{case_id}", headers={"X-Break-Glass": "Crisis line call"})
        assert emergency.status_code == 200, emergency.text
    subject = f"client:{client_id}"
    # the caseload polls before the case appeared showed nobody; four reads showed the client:
    # the manager's, the caseworker's, the supervisor's caseload, the crisis worker's
    wait_for_records(stack, {"subjects": subject, "sub": "cris-dpo"})
    stored = wait_for_records(stack, {"subjects": subject}, count=4)

    # "Who saw this client's data, when and why"
    rows = [
        json.loads(line)
        for line in casework(stack, "audit", "subject", subject, "--json").splitlines()
    ]
    assert {r["_id"] for r in stored} <= {r["id"] for r in rows}
    seen = {(r["who"], r["purpose"], r["operation"]) for r in rows}
    assert {
        ("ivy-dpo", "TREAT", "GET /referrals/{referral_id}"),  # through the person's link
        (worker, "TREAT", "GET /cases/{case_id}"),
        ("sue-dpo", "HOPERAT", "GET /caseloads/{worker_id}"),
        ("cris-dpo", "BTG", "GET /cases/{case_id}"),
        ("mia-dpo", "HOPERAT", "GET /cases/{case_id}"),
    } <= seen
    assert all(r["outcome"] == 200 for r in rows)
    assert all(subject in r["subjects"] or clients_shown(r) == [] for r in rows)
    assert [r["recorded"] for r in rows] == sorted(r["recorded"] for r in rows)
    # Only ids: no name, no reason, no concern.
    everything = json.dumps([r["event"] for r in stored], default=str)
    for personal in (family_name, "Robin", "Crisis line call", "hopeless"):
        assert personal not in everything

    # "What did this person look at"
    mine = [
        json.loads(line)
        for line in casework(stack, "audit", "agent", worker, "--json").splitlines()
    ]
    assert [(r["operation"], r["purpose"], clients_shown(r)) for r in mine] == [
        ("GET /cases/{case_id}", "TREAT", [subject])
    ]
    table = casework(stack, "audit", "agent", "cris-dpo").splitlines()  # the table output
    assert table[0].split() == [
        "recorded", "purpose", "action", "operation", "outcome", "subjects", "service"
    ]  # fmt: skip
    assert len(table) == 2
    cells = table[1].split()
    assert cells[1:6] + cells[7:] == [
        "BTG",
        "R",
        "GET",
        "/cases/{case_id}",
        "200",
        "casework/cases",
    ]
    assert subject in cells[6].split(",")  # the subjects shown, comma-separated

    # --since / --until bound the answer
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (started - timedelta(hours=1)).isoformat()
    assert casework(stack, "audit", "subject", subject, "--json", "--since", later) == ""
    assert casework(stack, "audit", "subject", subject, "--json", "--until", earlier) == ""


@pytest.mark.timeout(240)
def test_the_readme_access_audit_examples_work_when_pasted(stack: Stack, tmp_path: Path) -> None:
    """The "Access audit" block runs as written after the "Try it" block, in a fresh bash,
    against the test stack (its ports and this test's scratch directory replace the README's)."""
    # a client of its own: the walk-through test registers "Alex Morgan" on this stack too,
    # and a second referral of the same person waits for a duplicate decision
    own = {'"family_name": "Morgan"': f'"family_name": "Morgan{uuid.uuid4().hex[:8]}"'}
    run = run_blocks(stack, tmp_path, "## Try it", "### Access audit", replace=own, timeout=230)
    out = run.stdout
    client_id = json.loads((tmp_path / "accepted.json").read_text())["client_id"]
    assert '"field":"header.X-Purpose-Of-Use"' in out  # the unknown purpose, refused
    assert '"summary":"Break-glass access by cris' in out  # the supervisor's timeline
    lines = out.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["recorded", "who", "roles"]
    )
    who = {
        line.split()[1]: line.split()[3]
        for line in lines[header + 1 :]
        if "casework/" in line and not line.startswith("{")
    }
    assert who["cara"] == "TREAT"
    assert who["cris"] == "BTG"
    [mine] = [json.loads(line) for line in lines if line.startswith('{"id"')]
    assert (mine["who"], mine["purpose"], clients_shown(mine)) == (
        "cris",
        "BTG",
        [f"client:{client_id}"],
    )
