"""`housing-chain`: the command line of caseworkers, housing pilots and supervisors.

Exit codes: 0 done, 1 refused (with a message naming the case and why; nothing recorded),
2 usage (a bad option or value, named), 3 an import stopped by an outage (the lines not sent
are counted; run it again). Every step takes `--on DATE` (effective date,
default today), `--as ACTOR` and `--json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from application.reporting import REPORT_NAMES
from config.settings import Settings
from domain.commands import import_line_adapter
from domain.personal_number import mask_personal_numbers
from domain.steps import BY_TYPE
from domain.text import terminal_safe
from interfaces.cli.labels import column, stage_name, terminal_language
from interfaces.cli.notices import notice_app

T = TypeVar("T")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The housing chain: cases from application to first-hand lease, on Temporal.",
    pretty_exceptions_enable=False,  # its tracebacks print local variables: personal data
)
out = Console()
err = Console(stderr=True)

DataOption = typer.Option(None, "--data", envvar="HOUSING_CHAIN_DATA",
                          help="data directory of the stack (default ./var)")
OnOption = typer.Option(None, "--on", help="effective date YYYY-MM-DD (default today)")
AsOption = typer.Option(None, "--as", help="on behalf of: who did the step, when recording it "
                        "for someone else (default: you)")
JsonOption = typer.Option(False, "--json", help="answer as JSON")
IdOption = typer.Option(None, "--id", help="command id (default: a new one)")


def settings_for(data: Path | None) -> Settings:
    settings = Settings()
    if data is not None:
        settings = settings.model_copy(update={"data": data})
    return settings


def configure_logs(settings: Settings) -> None:
    from config.logs import configure

    configure(settings.log_format, os.environ.get("HOUSING_CHAIN_LOG_LEVEL", "warning"),
              stream=sys.stderr)


def fail(message: str, code: int, as_json: bool = False) -> None:
    message = mask_personal_numbers(message)  # an echo of what was typed, as the API's
    if as_json:
        print(json.dumps({"accepted": False, "reason": message}))
    else:
        # one line however long: the terminal wraps it, scripts read it whole
        err.print(f"[bold red]refused:[/] {message}" if code == 1 else f"[red]error:[/] {message}",
                  highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def call(settings: Settings, work: Callable[[Any], Awaitable[T]], as_json: bool = False) -> T:
    """Run one use case through the CLI's backend (in-process, or a remote API) and turn its
    refusals into the CLI's exit codes: 1 refused / not found / not allowed, 2 bad input."""
    from application import errors
    from domain.access import Forbidden
    from interfaces.cli.backend import backend_for

    async def go() -> T:
        return await work(backend_for(settings))

    try:
        return asyncio.run(go())
    except errors.BadInput as exc:
        fail(str(exc), 2, as_json)
    except (errors.UseCaseError, Forbidden) as exc:
        fail(str(exc), 1, as_json)
    raise AssertionError("unreachable")  # pragma: no cover - fail() exits


def clean(text: Any) -> str:
    """Anything stored, escaped for the terminal (an actor named ESC[2J clears nothing)."""
    return terminal_safe(str(text))


# --- steps -------------------------------------------------------------------------------

def send_step(fields: dict[str, Any], on: date | None, actor: str | None, as_json: bool,
              command_id: str | None, data: Path | None) -> None:
    settings = settings_for(data)
    configure_logs(settings)
    if on is not None:
        fields["on"] = on.isoformat()
    result = call(settings, lambda b: b.submit_step(fields, command_id, actor), as_json)
    if as_json:
        print(result.model_dump_json())
    else:
        what = fields.get("case") or fields.get("apartment", "")
        day = fields.get("on") or "today"
        note = " (already recorded)" if result.duplicate else ""
        out.print(f"[green]done:[/] {fields['type']} {clean(what)} on {day}{note} → {result.stage}"
                  f"  [dim]{', '.join(result.events)}[/]", highlight=False)


def step_command(step_type: str, name: str | None = None):
    """Register a step's command under its name in the one list of steps, with its summary."""
    spec = BY_TYPE[step_type]
    return app.command(name or spec.cli_name, help=spec.summary)


@step_command("apply")
def apply(
    case: str, client: str = typer.Option(..., help="pseudonymous client id"),
    target_group: str = typer.Option(..., help="e.g. substance_abuse, families_with_children"),
    district: str = typer.Option(...), adults: int = 1, children: int = 0,
    housing_situation: str = "without_housing", referral: str = "self",
    name: str = typer.Option(None, help="kept only in the identity store"),
    personal_number: str = typer.Option(None, help="kept only in the identity store"),
    on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
    command_id: str = IdOption, data: Path = DataOption,
) -> None:
    """Register an application (ansökan) and open the case."""
    send_step({"type": "apply", "case": case, "referral": referral, "client": {
        "id": client, "target_group": target_group, "district": district,
        "household": {"adults": adults, "children": children},
        "housing_situation": housing_situation, "name": name, "personal_number": personal_number,
    }}, on, actor, as_json, command_id, data)


@step_command("start_assessment")
def start_assessment(case: str, on: date = OnOption, actor: str = AsOption,
                     as_json: bool = JsonOption, command_id: str = IdOption,
                     data: Path = DataOption) -> None:
    """Start the investigation (utredning)."""
    send_step({"type": "start_assessment", "case": case}, on, actor, as_json, command_id, data)


@step_command("decide")
def decide(case: str, outcome: str = typer.Option(..., help="granted or denied"),
           programme: str = typer.Option(None, help="training_apartment, housing_first, "
                                                    "municipal_contract"),
           reason_code: str = typer.Option(None, help="needed when denied: not_homeless, "
                                           "other_support_suffices, own_means, other (policy)"),
           reason: str = typer.Option(None, help="an optional note"),
           on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
           command_id: str = IdOption, data: Path = DataOption) -> None:
    """Decide the application (biståndsbeslut): granted with a programme, or denied."""
    send_step({"type": "decide", "case": case, "outcome": outcome, "programme": programme,
               "reason_code": reason_code, "reason": reason}, on, actor, as_json, command_id,
              data)


@step_command("offer")
def offer(case: str, apartment: str = typer.Option(...), on: date = OnOption,
          actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
          data: Path = DataOption) -> None:
    """Offer a vacant apartment from the stock."""
    send_step({"type": "offer", "case": case, "apartment": apartment}, on, actor, as_json,
              command_id, data)


@step_command("landlord_decision")
def landlord_decision(case: str, approved: bool = typer.Option(..., "--approved/--refused"),
                      reason_code: str = typer.Option(
                          None, help="needed when refused: rent_history, references, "
                                     "household_size, disturbance, other (policy)"),
                      reason: str = typer.Option(None, help="an optional note"),
                      on: date = OnOption,
                      actor: str = AsOption, as_json: bool = JsonOption,
                      command_id: str = IdOption, data: Path = DataOption) -> None:
    """The landlord approves or refuses the candidate."""
    send_step({"type": "landlord_decision", "case": case, "approved": approved,
               "reason_code": reason_code, "reason": reason}, on, actor, as_json, command_id,
              data)


@step_command("move_in")
def move_in(case: str, apartment: str = typer.Option(...),
            lease_end: date = typer.Option(None, help="a time-limited lease: its last day"),
            on: date = OnOption,
            actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
            data: Path = DataOption) -> None:
    """The client moves into the training apartment (first night there)."""
    send_step({"type": "move_in", "case": case, "apartment": apartment,
               **({"lease_end": lease_end.isoformat()} if lease_end else {})}, on, actor,
              as_json, command_id, data)


@step_command("record_visit")
def record_visit(case: str, kind: str = "home_visit",
                 rent_paid: bool = typer.Option(None, "--rent-paid/--rent-unpaid"),
                 home_insurance: bool = typer.Option(None, "--insured/--uninsured"),
                 in_housing_queue: bool = typer.Option(None, "--in-queue/--not-in-queue"),
                 on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                 command_id: str = IdOption, data: Path = DataOption) -> None:
    """A support visit (home_visit, follow_up, inspection, coordinator_meeting), with the
    monthly checklist."""
    answers = (rent_paid, home_insurance, in_housing_queue)
    checklist = None
    if any(a is not None for a in answers):
        checklist = {"rent_paid": rent_paid, "home_insurance": home_insurance,
                     "in_housing_queue": in_housing_queue}
    send_step({"type": "record_visit", "case": case, "kind": kind, "checklist": checklist},
              on, actor, as_json, command_id, data)


@step_command("course_session")
def course_session(case: str, session: int = typer.Option(..., min=1, max=4),
                   on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                   command_id: str = IdOption, data: Path = DataOption) -> None:
    """A housing-course session (boendekurs, 1–4) attended."""
    send_step({"type": "course_session", "case": case, "session": session}, on, actor,
              as_json, command_id, data)


@step_command("rent_arrears")
def rent_arrears(case: str, amount: Decimal = typer.Option(..., help="SEK"),
                 on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                 command_id: str = IdOption, data: Path = DataOption) -> None:
    """Rent arrears reported (the caseworker must be told at once)."""
    send_step({"type": "rent_arrears", "case": case, "amount": str(amount)}, on, actor,
              as_json, command_id, data)


@step_command("repayment_plan")
def repayment_plan(case: str, instalment: list[str] = typer.Option(
                       [], help="amount|due date (YYYY-MM-DD); repeat per instalment"),
                   on: date = OnOption, actor: str = AsOption,
                   as_json: bool = JsonOption, command_id: str = IdOption,
                   data: Path = DataOption) -> None:
    """A repayment plan agreed for the outstanding arrears, optionally with instalments."""
    send_step({"type": "repayment_plan", "case": case,
               "instalments": [_fields(i, ("amount", "due"), "--instalment") for i in instalment]},
              on, actor, as_json, command_id, data)


@step_command("rent_payment")
def rent_payment(case: str, amount: Decimal = typer.Option(..., help="SEK"),
                 on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                 command_id: str = IdOption, data: Path = DataOption) -> None:
    """A payment against the rent arrears (they go down, never below zero)."""
    send_step({"type": "rent_payment", "case": case, "amount": str(amount)}, on, actor,
              as_json, command_id, data)


@step_command("complaint")
def complaint(case: str, kind: str = typer.Option(
                  "complaint", help="complaint, or warning (anmodan om rättelse)"),
              note: str = typer.Option(""), on: date = OnOption,
              actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
              data: Path = DataOption) -> None:
    """A disturbance complaint, or a warning (anmodan om rättelse)."""
    send_step({"type": "complaint", "case": case, "kind": kind, "note": note}, on, actor,
              as_json, command_id, data)


@step_command("refer_takeover")
def refer_takeover(case: str, on: date = OnOption, actor: str = AsOption,
                   as_json: bool = JsonOption, command_id: str = IdOption,
                   data: Path = DataOption) -> None:
    """Refer the client to the landlord for takeover of the lease (övertagande)."""
    send_step({"type": "refer_takeover", "case": case}, on, actor, as_json, command_id, data)


@step_command("takeover_decision")
def takeover_decision(case: str, approved: bool = typer.Option(..., "--approved/--refused"),
                      reason_code: str = typer.Option(
                          None, help="needed when refused: arrears, complaints, references, "
                                     "credit_check, other (policy)"),
                      reason: str = typer.Option(None, help="an optional note"),
                      credit_check: bool = typer.Option(
                          None, "--credit-check-passed/--credit-check-failed"),
                      rent_paid_on_time: bool = typer.Option(
                          None, "--rent-paid-on-time/--rent-paid-late",
                          help="references (with --complaints-last-12-months)"),
                      complaints_last_12_months: int = typer.Option(None, min=0),
                      on: date = OnOption,
                      actor: str = AsOption, as_json: bool = JsonOption,
                      command_id: str = IdOption, data: Path = DataOption) -> None:
    """The landlord's takeover decision, optionally with the credit check and references."""
    fields: dict[str, Any] = {"type": "takeover_decision", "case": case, "approved": approved,
                              "reason_code": reason_code, "reason": reason}
    if credit_check is not None:
        fields["credit_check"] = {"passed": credit_check}
    if rent_paid_on_time is not None or complaints_last_12_months is not None:
        fields["references"] = {"rent_paid_on_time": rent_paid_on_time,
                                "complaints_last_12_months": complaints_last_12_months}
    send_step(fields, on, actor, as_json, command_id, data)


@step_command("assign")
def assign(case: str, role: str = typer.Option(..., help="caseworker or housing_pilot"),
           to: str = typer.Option(..., help="the actor who takes it on"),
           on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
           command_id: str = IdOption, data: Path = DataOption) -> None:
    """Assign (or reassign) the responsible caseworker or the housing pilot."""
    send_step({"type": "assign", "case": case, "role": role, "to": to}, on, actor, as_json,
              command_id, data)


@step_command("exit")
def exit_case(case: str, destination: str = typer.Option(
                  ..., help="first_hand_lease, own_housing, terminated, withdrawn, deceased, "
                            "moved_away"),
              on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
              command_id: str = IdOption, data: Path = DataOption) -> None:
    """Close the case with its exit destination."""
    send_step({"type": "exit", "case": case, "destination": destination}, on, actor, as_json,
              command_id, data)


def _fields(text: str, names: tuple[str, ...], option: str) -> dict[str, str | None]:
    """A repeated option's value, `a|b|c`, as named fields (empty ones None)."""
    parts = [p.strip() for p in text.split("|")]
    if len(parts) > len(names):
        raise typer.BadParameter(f"{option} takes {'|'.join(names)}, not {text!r}")
    return {n: (parts[i] or None) if i < len(parts) else None for i, n in enumerate(names)}


@step_command("plan")
def plan(case: str, goal: str = typer.Option("own housing", help="the overall goal"),
         sub_goal: list[str] = typer.Option(
             [], help="id|goal|responsible|follow-up date (YYYY-MM-DD); repeat per sub-goal"),
         on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
         command_id: str = IdOption, data: Path = DataOption) -> None:
    """The individual plan (individuell plan): the overall goal and its sub-goals."""
    names = ("id", "goal", "responsible", "follow_up")
    send_step({"type": "plan", "case": case, "goal": goal,
               "sub_goals": [_fields(g, names, "--sub-goal") for g in sub_goal]},
              on, actor, as_json, command_id, data)


@step_command("plan_review")
def plan_review(case: str, review: list[str] = typer.Option(
                    ..., help="sub-goal id|met, partly or not_met|note|next follow-up date; "
                              "repeat per sub-goal"),
                on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                command_id: str = IdOption, data: Path = DataOption) -> None:
    """A review of the plan: each sub-goal met, partly or not met, with a note."""
    rows = [_fields(r, ("sub_goal", "result", "note", "next_follow_up"), "--review")
            for r in review]
    for r in rows:
        r["note"] = r["note"] or ""
    send_step({"type": "plan_review", "case": case, "reviews": rows}, on, actor, as_json,
              command_id, data)


@step_command("temporary_placement")
def temporary_placement(
    case: str, placement: str = typer.Option(..., help="an id for the placement"),
    kind: str = typer.Option(..., help="hotel, shelter, camping_cabin, family, other"),
    start: date = typer.Option(None, "--from", help="the first night; default --on"),
    end: date = typer.Option(None, "--to", help="the planned end; open until ended"),
    cost_per_night: Decimal = typer.Option(None, help="SEK"),
    on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
    command_id: str = IdOption, data: Path = DataOption,
) -> None:
    """Temporary accommodation while waiting."""
    send_step({"type": "temporary_placement", "case": case, "placement": placement, "kind": kind,
               "start": start.isoformat() if start else None,
               "end": end.isoformat() if end else None,
               "cost_per_night": str(cost_per_night) if cost_per_night is not None else None},
              on, actor, as_json, command_id, data)


@step_command("placement_ended")
def placement_ended(case: str, placement: str = typer.Option(...),
                    end: date = typer.Option(None, "--to", help="default --on"),
                    on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                    command_id: str = IdOption, data: Path = DataOption) -> None:
    """A temporary placement ended."""
    send_step({"type": "placement_ended", "case": case, "placement": placement,
               "end": end.isoformat() if end else None}, on, actor, as_json, command_id, data)


@step_command("support_interrupted")
def support_interrupted(case: str, kind: str = typer.Option(
                            ..., help="hospital, prison, treatment, other"),
                        on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                        command_id: str = IdOption, data: Path = DataOption) -> None:
    """The support is interrupted (a stay in hospital, prison or treatment, other)."""
    send_step({"type": "support_interrupted", "case": case, "kind": kind}, on, actor, as_json,
              command_id, data)


@step_command("support_resumed")
def support_resumed(case: str, on: date = OnOption, actor: str = AsOption,
                    as_json: bool = JsonOption, command_id: str = IdOption,
                    data: Path = DataOption) -> None:
    """The interrupted support is resumed."""
    send_step({"type": "support_resumed", "case": case}, on, actor, as_json, command_id, data)


@step_command("support_level")
def support_level(case: str, level: int = typer.Option(..., min=1, max=4,
                                                       help="1-4 (policy support_levels)"),
                  on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                  command_id: str = IdOption, data: Path = DataOption) -> None:
    """The support level of the four-level model, from --on."""
    send_step({"type": "support_level", "case": case, "level": level}, on, actor, as_json,
              command_id, data)


@step_command("move_apartment")
def move_apartment(case: str, apartment: str = typer.Option(..., help="the vacant apartment "
                                                                       "moved to"),
                   on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                   command_id: str = IdOption, data: Path = DataOption) -> None:
    """Move to another apartment of the programme (omflyttning)."""
    send_step({"type": "move_apartment", "case": case, "apartment": apartment}, on, actor,
              as_json, command_id, data)


@step_command("renew_lease")
def renew_lease(case: str, lease_end: date = typer.Option(..., help="the new last day"),
                on: date = OnOption, actor: str = AsOption, as_json: bool = JsonOption,
                command_id: str = IdOption, data: Path = DataOption) -> None:
    """A time-limited lease renewed to a new last day; answers the lease_renewal reminder."""
    send_step({"type": "renew_lease", "case": case, "lease_end": lease_end.isoformat()}, on,
              actor, as_json, command_id, data)


@step_command("register_apartment")
def register_apartment(apartment: str, landlord: str = typer.Option(...),
                       rooms: int = typer.Option(...),
                       accessible: bool = typer.Option(False, help="adapted for people with "
                                                                   "functional impairments"),
                       landlord_type: str = typer.Option(None, help="municipal_company or "
                                                                    "private"),
                       on: date = OnOption,
                       actor: str = AsOption, as_json: bool = JsonOption,
                       command_id: str = IdOption, data: Path = DataOption) -> None:
    """Add an apartment to the stock (lägenhetsbank)."""
    send_step({"type": "register_apartment", "apartment": apartment, "landlord": landlord,
               "rooms": rooms, "accessible": accessible, "landlord_type": landlord_type},
              on, actor, as_json, command_id, data)


@step_command("apartment_to_repair")
def apartment_to_repair(apartment: str, on: date = OnOption, actor: str = AsOption,
                        as_json: bool = JsonOption, command_id: str = IdOption,
                        data: Path = DataOption) -> None:
    """A vacant apartment goes under repair (it cannot be offered until repaired)."""
    send_step({"type": "apartment_to_repair", "apartment": apartment}, on, actor, as_json,
              command_id, data)


@step_command("apartment_repaired")
def apartment_repaired(apartment: str, on: date = OnOption, actor: str = AsOption,
                       as_json: bool = JsonOption, command_id: str = IdOption,
                       data: Path = DataOption) -> None:
    """An apartment under repair is vacant again."""
    send_step({"type": "apartment_repaired", "apartment": apartment}, on, actor, as_json,
              command_id, data)


@step_command("return_apartment")
def return_apartment(apartment: str, on: date = OnOption, actor: str = AsOption,
                     as_json: bool = JsonOption, command_id: str = IdOption,
                     data: Path = DataOption) -> None:
    """Return a vacant apartment to its landlord (it leaves the stock)."""
    send_step({"type": "return_apartment", "apartment": apartment}, on, actor, as_json,
              command_id, data)


# --- reading -------------------------------------------------------------------------------

@app.command()
def status(case: str, as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Where a case stands: its stage (or exit), the steps allowed now and what is due."""
    settings = settings_for(data)
    configure_logs(settings)
    st = call(settings, lambda b: b.status(case), as_json)
    if as_json:
        print(json.dumps(st, ensure_ascii=False))
        return
    stage = st["outcome"] if st["stage"] == "closed" else st["stage"]
    name = stage_name(st["stage"], st["stage_label"], terminal_language())
    out.print(f"[bold]case {clean(st['case'])}[/]: {stage} — {name}", highlight=False)
    if st.get("last_on"):
        out.print(f"last step on {st['last_on']}")
    if st["stage"] != "closed":
        out.print(f"allowed now: {', '.join(st['allowed'])}; exits: {', '.join(st['exits'])}")
    for line in case_file_lines(st.get("case_file") or {}):
        out.print(line, highlight=False)
    if st.get("due"):
        table = Table("due", "what", "raised")
        for item in sorted(st["due"], key=lambda i: i["due"]):
            label = item["kind"].replace("_", " ") + (
                f" (quarter {item['quarter']})" if item.get("quarter") else "")
            table.add_row(item["due"], label, item["fires_at"][:16].replace("T", " "))
        out.print(table)
    if st.get("workflow") == "missing":
        out.print("[yellow]the case's workflow is not running: its timers are stopped[/]")


def case_file_lines(f: dict[str, Any]) -> list[str]:
    """The case file's facts as `status` prints them, a line each, only those recorded."""
    lines = []
    if f.get("support_level"):
        lines.append(f"support level {f['support_level']['level']} "
                     f"({f['support_level']['name'] or 'unnamed'})")
    if f.get("plan"):
        goals = ", ".join(f"{g['id']} (follow-up {g['follow_up']})"
                          for g in f["plan"]["open_sub_goals"]) or "none open"
        lines.append(f"individual plan of {f['plan']['made_on']}: sub-goals {goals}")
    if f.get("lease_end"):
        lines.append(f"time-limited lease until {f['lease_end']}")
    if f.get("interrupted"):
        lines.append(f"support interrupted since {f['interrupted']['since']} "
                     f"({f['interrupted']['kind']})")
    for p in f.get("open_placements") or []:
        lines.append(f"temporary placement {p['id']} since {p['start']}"
                     + (f", planned to end {p['planned_end']}" if p.get("planned_end") else ""))
    if f.get("arrears") not in (None, "0"):
        lines.append(f"rent arrears {f['arrears']} SEK"
                     + (f", repayment plan of {len(f['repayment_plan'])} instalments"
                        if f.get("repayment_plan") else ""))
    if f.get("warnings"):
        lines.append(f"warnings (anmodan om rättelse): {', '.join(f['warnings'])}")
    return lines


@app.command()
def repair(case: str, as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Start a case's workflow again from the event store (admin) after it was terminated or
    failed outside the engine: the same stage and timers, no event lost or doubled."""
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    result = call(settings, lambda _: UseCases(settings).repair(local_operator(), case), as_json)
    if as_json:
        print(json.dumps(result))
        return
    said = {"restarted": "[green]repaired:[/] the workflow runs again",
            "running": "the workflow is running: nothing to repair",
            "closed": "the case is closed: nothing to repair"}
    out.print(f"case {clean(case)} ({result['stage']}): {said[result['workflow']]}", highlight=False)


@app.command()
def history(case: str, as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Every domain event of a case: effective date, recorded time, actor, what happened."""
    settings = settings_for(data)
    configure_logs(settings)
    result = call(settings, lambda b: b.history(case), as_json)
    rows = result["rows"]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("#", "effective", "recorded (UTC)", "actor", "event", "details",
                  title=f"case {clean(case)}")
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in r["details"].items())
        actor = clean(r["actor"] or "")
        if r.get("recorded_by"):
            actor += f" (recorded by {clean(r['recorded_by'])})"
        table.add_row(str(r["version"]), str(r["on"]), r["recorded"][:19].replace("T", " "),
                      actor, r["event"], clean(details))
    out.print(table)


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    strict: bool = typer.Option(False, help="stop at the first refused line"),
    parallel: int = typer.Option(16, min=1, max=64, help="updates in flight at once"),
    actor: str = typer.Option("import", "--as", help="actor for lines without one"),
    as_json: bool = JsonOption, data: Path = DataOption,
) -> None:
    """Send a JSONL file of commands through the workflows, line by line."""
    from application.importer import read_lines

    settings = settings_for(data)
    configure_logs(settings)
    try:
        raw = read_lines(file)
    except ValueError as exc:
        fail(str(exc), 2, as_json)
    report = do_import(settings, raw, file.stem, actor, strict=strict, parallel=parallel,
                       show_progress=not as_json)
    if as_json:
        print(json.dumps({"accepted": report["accepted"],
                          "duplicates": report.get("duplicates", 0), "refused": report["refused"],
                          **({"outage": report["outage"], "not_sent": report["not_sent"]}
                             if report.get("outage") else {})}))
    else:
        print_import_report(report)
    if report.get("outage"):
        raise typer.Exit(3)  # not sent, not refused: run the import again
    if report["refused"]:
        raise typer.Exit(1)


def do_import(settings: Settings, raw: list[str], source: str, actor: str, *, strict: bool,
              parallel: int, show_progress: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if not show_progress:
        return call(settings, lambda b: b.import_lines(raw, source, actor, strict, parallel,
                                                       None, None))
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                  transient=False) as progress:
        task = progress.add_task("importing", total=len(raw))
        return call(settings, lambda b: b.import_lines(
            raw, source, actor, strict, parallel, lambda n: progress.advance(task, n),
            lambda n: progress.update(task, total=n)))


def print_import_report(report: dict[str, Any]) -> None:
    for r in report["refused"]:
        case = r.get("case")
        where = f"case {case}: " if case and f"case {case}" not in r["reason"] else ""
        err.print(f"[red]line {r['line']}[/] refused: {clean(where)}{clean(r['reason'])}",
                  highlight=False)
    dup = f" ({report['duplicates']} already recorded)" if report.get("duplicates") else ""
    stop = " — stopped at the first refusal (--strict)" if report.get("stopped_early") else ""
    if report.get("outage"):
        stop = f" — {report['not_sent']} not sent"
        err.print(f"[red]stopped:[/] {clean(report['outage'])}", highlight=False)
    out.print(f"[bold]{report['accepted']} accepted{dup}, {len(report['refused'])} refused[/]{stop}",
              highlight=False)


# --- read models ----------------------------------------------------------------------------

def projection_for(settings: Settings):
    """The projection over this stack's event store (also used to catch up on demand)."""
    from application.readmodels import projection_for as runner_for

    return runner_for(settings)


@app.command()
def report(
    name: str = typer.Argument(..., help=", ".join(REPORT_NAMES)),
    case: str = typer.Argument(None, help="the case, for `report history`"),
    date_from: date = typer.Option(None, "--from", help="first day (of the later date)"),
    date_to: date = typer.Option(None, "--to", help="last day (of the later date)"),
    as_of: date = typer.Option(None, "--as-of", help="the day the report looks from"),
    by: str = typer.Option(None, help="a period (year, quarter, month) or a group: target-group, "
                           "district, programme, referral-source, landlord, landlord-type, "
                           "sex, age-band, as the report takes"),
    interval: str = typer.Option(None, help="for waiting-times: application-to-decision "
                                 "(default), decision-to-move-in, move-in-to-exit, "
                                 "application-to-housed"),
    quarter: str = typer.Option(None, help="for ivo: e.g. 2026Q3"),
    year: int = typer.Option(None, help="for kpis: e.g. 2026"),
    programme: str = typer.Option(None), target_group: str = typer.Option(None),
    district: str = typer.Option(None),
    wait: float = typer.Option(30.0, help="seconds to wait for the read models to catch up"),
    as_json: bool = JsonOption, as_csv: bool = typer.Option(False, "--csv"),
    data: Path = DataOption,
) -> None:
    """Waiting times, throughput, the queue, the IVO report, caseloads, arrears, the stock
    and returns from the read models (caught up first); a case's audit history from the
    event store. An option the report does not take is refused."""
    from application.errors import BadInput
    from application.reporting import report_options

    settings = settings_for(data)
    configure_logs(settings)
    if name not in REPORT_NAMES:
        fail(f"no report {name!r}; reports: {', '.join(REPORT_NAMES)}", 2)
    try:
        options = report_options(date_from=date_from, date_to=date_to, as_of=as_of, by=by,
                                 interval=interval, quarter=quarter, programme=programme,
                                 target_group=target_group, district=district, year=year)
    except BadInput as exc:
        fail(str(exc), 2, as_json)
    result = call(settings, lambda b: b.report(name, options, case, wait), as_json)
    emit_report(name, result, as_json, as_csv)


def emit_report(name: str, result: dict[str, Any], as_json: bool, as_csv: bool) -> None:

    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    elif as_csv:
        from application.reporting import csv_rows, csv_text

        sys.stdout.write(csv_text(csv_rows(result)))
    else:
        print_report(name, result)


def print_report(name: str, result: dict[str, Any]) -> None:
    from application.reporting import flatten

    rows = flatten(result.get("rows", []))
    title = name + "".join(f"  {k}: {v}" for k, v in result.items()
                           if k != "rows" and not isinstance(v, (list, dict)))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lang = terminal_language()
    table = Table(*([column(c, lang) for c in columns] or ["(no rows)"]), title=title)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r[c]) for c in columns))
    out.print(table)
    for key, value in result.items():
        if isinstance(value, dict):
            out.print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()),
                      highlight=False)


@app.command("worklist")
def worklist_command(
    actor: str = typer.Option(None, "--as",
                              help="whose worklist (default: everyone's; through the API, "
                                   "your own)"),
    days: int = typer.Option(14, min=0, max=366, help="also list what falls due within this"),
    as_of: date = typer.Option(None, "--as-of"),
    as_json: bool = JsonOption, data: Path = DataOption,
) -> None:
    """What is due and overdue: visits, follow-ups, the monthly checklist, decisions near or
    past three months, takeover eligibility, arrears without a plan, stalled stages; and from
    the case file: a missing housing pilot or individual plan, sub-goals to follow up,
    inspections and coordinator meetings (by programme), support interrupted for three months,
    a time-limited lease to renew, a missed instalment of a repayment plan."""
    settings = settings_for(data)
    configure_logs(settings)
    result = call(settings, lambda b: b.worklist(actor, days, as_of), as_json)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    # whose it is, as the answer says: through the API a plain `worklist` is the caller's own
    whose = result.get("actor", actor)
    everyone = whose is None
    table = Table("due", "status", "case", "what", *(["actor"] if everyone else []),
                  title=f"Worklist of {'everyone' if everyone else clean(whose)} on "
                        f"{result['as_of']}: {result['overdue']} overdue, "
                        f"{result['due']} due by {result['until']}")
    for item in result["rows"]:
        status = f"[red]overdue {item['days_overdue']} d[/]" if item["status"] == "overdue" \
            else "due"
        table.add_row(item["due"], status, clean(item["case"]), item["what"],
                      *([clean(item["actor"] or "")] if everyone else []))
    out.print(table)


projections_app = typer.Typer(help="The read-model projection: its position, and rebuilds.")
app.add_typer(projections_app, name="projections")


@projections_app.command("status")
def projections_status(as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Where each projection stands against the event store's head."""
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    row = UseCases(settings).projection_status(local_operator())["projections"][0]
    if as_json:
        print(json.dumps({"projections": [row]}))
    else:
        table = Table("projection", "position", "event store head", "behind")
        table.add_row(*(str(v) for v in row.values()))
        out.print(table)


@projections_app.command("rebuild")
def projections_rebuild(data: Path = DataOption) -> None:
    """Drop the read models and replay every event from the first."""
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    done = UseCases(settings).rebuild_projections(local_operator())
    out.print(f"rebuilt: {done['events']} events projected, position {done['position']}")


@app.command()
def project(data: Path = DataOption) -> None:
    """Run the projection on its own (scale-out): catch up, then follow the event store."""
    from config.logs import configure

    settings = settings_for(data)
    configure(settings.log_format, settings.log_level)
    runner = projection_for(settings)
    signal.signal(signal.SIGTERM, lambda *_: runner.stopping.set())
    print(f"projecting from event {runner.position} of {runner.head()}", flush=True)
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        pass
    print(f"stopped at event {runner.position}", flush=True)


# --- the stack ------------------------------------------------------------------------------

@app.command()
def up(data: Path = DataOption) -> None:
    """Run the embedded stack in the foreground: Temporal dev server, its UI, the worker and
    the event store under the data directory. Ctrl-C stops it."""
    from config.logs import configure
    from runtime.stack import EmbeddedStack

    settings = settings_for(data)
    configure(settings.log_format, settings.log_level)
    stack = EmbeddedStack(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stack.start()
        store = "PostgreSQL" if settings.uses_postgres else str(settings.data / "events.sqlite")
        print(f"Temporal UI: {stack.ui_url}", flush=True)
        print(f"API: {stack.api_url}/docs", flush=True)
        print(f"housing-chain ready: Temporal at {settings.temporal_address} "
              f"(namespace {settings.temporal_namespace}), event store {store}", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
        await stack.stop()

    try:
        asyncio.run(run())
    except RuntimeError as exc:
        stack.stop_server()
        fail(str(exc), 1)


@app.command()
def serve(data: Path = DataOption,
          host: str = typer.Option(None, help="default HOUSING_CHAIN_API_HOST (127.0.0.1)"),
          port: int = typer.Option(None, help="default HOUSING_CHAIN_API_PORT (8000)")) -> None:
    """Run the HTTP API on its own, against the configured Temporal and stores (stateless:
    run several behind a proxy)."""
    import uvicorn

    from config.gcwatch import keep_pauses_short, watch_gc_pauses
    from config.logs import configure
    from interfaces.api.app import create_app

    settings = settings_for(data)
    configure(settings.log_format, settings.log_level)
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings), host=host or settings.api_host, port=port or settings.api_port,
        log_level="warning", access_log=False))

    async def serving() -> None:
        # the collector schedule of the worker (config/gcwatch.py): a report reads tens of
        # thousands of rows, and without it each few reports set off a full collection
        stop = asyncio.Event()
        watch_gc_pauses()
        collector = asyncio.create_task(keep_pauses_short(
            settings.gc_freeze_seconds, settings.gc_full_minutes, stop))
        try:
            await server.serve()
        finally:
            stop.set()
            await collector

    asyncio.run(serving())


user_app = typer.Typer(no_args_is_help=True, help="The local issuer's users (<data>/users.json).")
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="the user id people sign in with"),
    role: list[str] = typer.Option(..., help="caseworker, housing_pilot, supervisor, landlord, "
                                             "admin (repeat for several)"),
    unit: list[str] = typer.Option([], help="a district (or, for a landlord, its name); repeat"),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="read the password from standard input"),
    data: Path = DataOption,
) -> None:
    """Create (or replace) a user of the web sign-in on the embedded stack; the password is
    stored as an argon2 hash only."""
    import getpass

    from interfaces.web.users import add_user

    settings = settings_for(data)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            fail("the passwords differ", 2)
    try:
        add_user(settings.data, name, password, list(role), list(unit))
    except ValueError as exc:
        fail(str(exc), 2)
    out.print(f"user {clean(name)} added: {', '.join(role)}"
              + (f" in {', '.join(unit)}" if unit else ""), highlight=False)


@app.command()
def token(
    subject: str = typer.Option(..., "--as", help="the token's subject: who signs in"),
    role: list[str] = typer.Option(..., help="caseworker, housing_pilot, supervisor, landlord, "
                                             "admin (repeat for several)"),
    unit: list[str] = typer.Option([], help="a district (or, for a landlord, its name); repeat"),
    hours: float = typer.Option(8.0, min=0.01, max=24 * 30, help="valid for"),
    data: Path = DataOption,
) -> None:
    """Print a bearer token from the embedded stack's own issuer (for scripts and tests)."""
    from application.tokens import LocalIssuer
    from domain.access import ROLE_NAMES

    settings = settings_for(data)
    unknown = [r for r in role if r not in ROLE_NAMES]
    if unknown:
        fail(f"--role {unknown[0]!r} is not a role; roles: {', '.join(ROLE_NAMES)}", 2)
    if settings.oidc_issuer:
        fail(f"this installation signs in with {settings.oidc_issuer}: get a token there", 2)
    issuer = LocalIssuer(settings.data, audience=settings.oidc_audience)
    try:
        print(issuer.mint(subject, role, unit, ttl_seconds=int(hours * 3600)))
    except ValueError as exc:
        fail(f"--as: {exc}", 2)


audit_app = typer.Typer(help="The access log: verify its hash chain, the monthly review.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    anchor: list[str] = typer.Option([], "--anchor", help="SEQ:HASH printed by an earlier "
                                     "verify and kept elsewhere: that record must still be in "
                                     "the chain (repeatable)"),
    as_json: bool = JsonOption, data: Path = DataOption,
) -> None:
    """Recompute the access log's hash chain and name the first broken record; check that the
    records anchored by earlier runs (and by --anchor) are still there; print the new anchor."""
    from application import errors
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    try:
        result = UseCases(settings).audit_verify(local_operator(), anchor)
    except errors.BadInput as exc:
        fail(f"--{exc}", 2)
    for warning in [] if as_json else result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if as_json:
        print(result.model_dump_json())
    elif result.ok:
        out.print(f"[green]intact:[/] {result.checked} access records, hash chain unbroken, "
                  f"{result.anchors_checked} anchors in place", highlight=False)
        if result.head_seq is not None:
            out.print(f"anchor: {result.head_seq}:{result.head_hash} (kept in "
                      "audit-anchors.jsonl; keep a copy elsewhere too, e.g. in the review's "
                      "minutes, and pass it as --anchor)", highlight=False, soft_wrap=True)
    else:
        err.print(f"[bold red]broken:[/] record {result.first_broken}: {result.reason} "
                  f"({result.checked} checked)", highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("review")
def audit_review(month: str = typer.Option(..., help="YYYY-MM"), as_json: bool = JsonOption,
                 data: Path = DataOption) -> None:
    """The monthly log review: reads by people with no assignment to the case's unit or the
    case at that moment, and every refused access."""
    import re

    from application.use_cases import UseCases, local_operator

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        fail(f"--month {month!r}: give the month as YYYY-MM, e.g. 2026-11", 2)
    settings = settings_for(data)
    configure_logs(settings)
    rows = UseCases(settings).audit_review(local_operator(), month)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False))
        return
    table = Table("#", "when (UTC)", "who", "roles", "units", "what", "case", "unit", "outcome",
                  title=f"Access log review {month}: {len(rows)} to look at")
    for r in rows:
        table.add_row(str(r.seq), r.at.strftime("%Y-%m-%d %H:%M"), clean(r.subject),
                      ",".join(r.roles), ",".join(r.units), r.action, clean(r.case or ""),
                      clean(r.case_unit or ""), r.outcome)
    out.print(table)


identity_app = typer.Typer(help="Client identities: erasure (GDPR art. 17).")
app.add_typer(identity_app, name="identity")


@identity_app.command("erase")
def identity_erase(client: str, as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Erase a client's name and personal identity number for good; case histories and
    reports stay as they are."""
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    result = UseCases(settings).erase_identity(local_operator(), client)
    if as_json:
        print(json.dumps(result))
    elif result["erased"]:
        out.print(f"[green]erased:[/] the identity of client {clean(client)}")
    elif result.get("erased_at"):
        out.print(f"the identity of client {clean(client)} was erased already, on "
                  f"{result['erased_at'][:10]}")
    else:
        out.print(f"no identity was recorded for client {clean(client)}")


keys_app = typer.Typer(help="The master key that wraps every client's data key.")
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Make a new master key, re-wrap every client data key under it and retire the old one
    (local admin); what was encrypted stays readable."""
    from application.errors import UseCaseError
    from application.use_cases import UseCases, local_operator

    settings = settings_for(data)
    configure_logs(settings)
    try:
        result = UseCases(settings).rotate_master_key(local_operator())
    except UseCaseError as exc:
        fail(str(exc), 2, as_json)
    if as_json:
        print(json.dumps(result))
    else:
        retired = (f"{result['retired']} retired" if result.get("retired") else
                   "no longer needed, remove from HOUSING_CHAIN_MASTER_KEYS: "
                   + (", ".join(result.get("removable") or []) or "none"))
        out.print(f"[green]rotated:[/] master key {result['current']} is current, "
                  f"{result['rewrapped']} data keys re-wrapped; {retired}")


def start_stack_process(settings: Settings, timeout: float = 120) -> subprocess.Popen:
    """`housing-chain up` as a child process; returns once it prints `ready`."""
    env = dict(os.environ, HOUSING_CHAIN_DATA=str(settings.data))
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli.main", "up"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "ready" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or proc.poll() is not None:
        proc.terminate()
        raise RuntimeError("the stack did not start:\n" + "".join(lines[-20:]))
    return proc


@app.command()
def demo(
    cases: int = typer.Option(200, min=1, help="how many cases the demo municipality has"),
    keep_running: bool = typer.Option(True, help="keep the stack running afterwards"),
    data: Path = DataOption,
) -> None:
    """The main job: start the stack, import the demo municipality, show where cases stand."""
    from application.gateway import connect
    from runtime import demo as demo_data
    from runtime.stack import listening, split_address

    settings = settings_for(data)
    configure_logs(settings)
    proc = None
    if not listening(*split_address(settings.temporal_address)):
        out.print("starting the embedded stack (Temporal dev server, worker, event store)…")
        proc = start_stack_process(settings)
    else:
        asyncio.run(connect(settings))
    settings.data.mkdir(parents=True, exist_ok=True)
    path = settings.data / "demo-municipality.jsonl"
    count = demo_data.write(path, cases=cases)
    out.print(f"importing {count} commands of {cases} cases from {path}")
    report = do_import(settings, path.read_text(encoding="utf-8").splitlines(), path.stem,
                       "import", strict=False, parallel=16, show_progress=True)
    print_import_report(report)
    print_where_cases_stand(report["stages"])
    print_headline_figures(settings)
    ui_port = settings.ui_port
    out.print(f"\nTemporal UI: http://localhost:{ui_port}   "
              f"try: housing-chain status {next(iter(sorted(report['stages'])), 'CASE')}")
    out.print(f"Web pages: http://{settings.api_host}:{settings.api_port}/  (sign in after "
              "`housing-chain user add NAME --role caseworker --unit Farsta`; API docs at /docs)",
              highlight=False)
    if proc is None:
        return
    if not keep_running:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        return
    out.print("the stack keeps running; Ctrl-C stops it")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def print_headline_figures(settings: Settings) -> None:
    """What a supervisor looks at first: waits by year, the queue, the last IVO quarter."""
    from application.reporting import ReportOptions
    from domain.calendar import quarter_bounds, quarter_of

    def report(name: str, **options: Any) -> dict[str, Any]:
        return call(settings, lambda b: b.report(name, ReportOptions(**options), None, 60.0))

    waits = report("waiting-times", interval="decision-to-move-in", by="year")
    table = Table("year", "moved in", "mean days", "median", "p90",
                  title="Waiting time from decision to move-in")
    for row in waits["rows"]:
        table.add_row(row["group"], str(row["count"]), str(row["mean_days"]),
                      str(row["median_days"]), str(row["p90_days"]))
    out.print(table)
    still = waits["still_waiting"]
    out.print(f"still waiting today: {still['count']} (on average {still['mean_days_so_far']} "
              "days so far)")
    today = date.fromisoformat(waits.get("as_of") or date.today().isoformat())
    last_quarter = quarter_of(quarter_bounds(quarter_of(today))[0] - timedelta(days=1))
    rows = report("ivo", quarter=last_quarter)["rows"]
    out.print(f"IVO report {last_quarter}: {ivo_headline(rows)}  (housing-chain report ivo "
              f"--quarter {last_quarter})")
    placed = report("placements", by="year")
    year = [r for r in placed["rows"] if r["group"] == str(today.year)]
    if year:
        out.print(f"temporary placements in {today.year}: "
                  f"{sum(r['placements'] for r in year)} begun, {sum(r['nights'] for r in year)} "
                  f"nights, {sum(Decimal(r['cost']) for r in year)} SEK  (housing-chain report "
                  "placements --by year)")


def ivo_headline(rows: list[dict[str, Any]]) -> str:
    """The IVO rows of a quarter counted by what they report, in words."""
    counts = Counter(r["status"] for r in rows)
    said = [(counts.pop("unexecuted", 0), "decisions unexecuted after three months"),
            (counts.pop("executed_late", 0), "executed late"),
            (counts.pop("support_interrupted", 0), "support interrupted for three months"),
            (counts.pop("resumed_late", 0), "support resumed late")]
    said += [(n, status.replace("_", " ")) for status, n in sorted(counts.items())]
    return ", ".join(f"{n} {what}" for n, what in said if n or what.startswith("decisions"))


def print_where_cases_stand(stages: dict[str, str]) -> None:
    counts: dict[str, int] = {}
    for stage in stages.values():
        counts[stage] = counts.get(stage, 0) + 1
    order = ["applied", "assessment", "waiting", "offered", "approved", "training",
             "takeover_review", "takeover_approved", "closed"]
    table = Table("stage", "cases", title="Where cases stand")
    for stage in order:
        if counts.get(stage):
            table.add_row(stage, str(counts[stage]))
    out.print(table)


@app.command()
def schema(output: Path = typer.Option(None, help="write here instead of stdout")) -> None:
    """The JSON Schema of one import line (generated from the pydantic models)."""
    text = json.dumps(import_schema(), indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")


def import_schema() -> dict[str, Any]:
    doc = import_line_adapter.json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "housing-chain import line"
    doc["description"] = "One JSON object per line of an `housing-chain import` file."
    return doc


app.add_typer(notice_app, name="notice")


def main() -> None:
    os.umask(0o077)  # the data directory holds personal data and keys: owner only
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user
        code = 1
        if os.environ.get("HOUSING_CHAIN_LOG_LEVEL", "").lower() == "debug":
            traceback.print_exc()
        first = escape(terminal_safe((str(exc).strip().splitlines() or [""])[0]))
        err.print(f"[red]error:[/] the command stopped on an unexpected {type(exc).__name__}"
                  f"{': ' + first if first else ''}. What it reported as done is done; run it "
                  "again to go on (with HOUSING_CHAIN_LOG_LEVEL=debug for the details).",
                  highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio sdk-python#300: avoid the interpreter-exit abort


if __name__ == "__main__":
    main()
