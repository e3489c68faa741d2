"""`housing-chain notice …`: eviction prevention (vräkningsförebyggande) and outreach
assignments (uppsök) on the command line.

Same conventions as the case steps in `interfaces.cli.main`: every step takes `--on DATE`
(effective date, default today), `--as ACTOR`, `--json` and `--id`; exit codes 0 done,
1 refused (the message names the notice, where it stands and what is allowed; nothing
recorded), 2 usage. The helpers of `interfaces.cli.main` are imported when a command runs, so
this module can be registered from `interfaces.cli.main` without an import cycle.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer

notice_app = typer.Typer(
    no_args_is_help=True,
    help="Eviction prevention: notices that a tenant risks eviction, and outreach assignments.",
)

DataOption = typer.Option(None, "--data", envvar="HOUSING_CHAIN_DATA",
                          help="data directory of the stack (default ./var)")
OnOption = typer.Option(None, "--on", help="effective date YYYY-MM-DD (default today; for "
                        "register, the notice date)")
AsOption = typer.Option(None, "--as", help="who does the step (default $USER)")
JsonOption = typer.Option(False, "--json", help="answer as JSON")
IdOption = typer.Option(None, "--id", help="command id (default: a new one)")


def send_notice_step(fields: dict[str, Any], on: date | None, actor: str | None, as_json: bool,
                     command_id: str | None, data: Path | None) -> None:
    """Parse, call the application layer (in process, or the API it points at), render."""
    from interfaces.cli.main import call, clean, configure_logs, out, settings_for

    settings = settings_for(data)
    configure_logs(settings)
    if on is not None:
        fields["on"] = on.isoformat()
    result = call(settings, lambda b: b.submit_notice_step(fields, command_id, actor), as_json)
    if as_json:
        print(result.model_dump_json())
    else:
        note = " (already recorded)" if result.duplicate else ""
        day = fields.get("on") or "today"
        out.print(f"[green]done:[/] {fields['type']} notice {clean(fields['notice'])} on {day}"
                  f"{note} → {result.stage}  [dim]{', '.join(result.events)}[/]",
                  highlight=False)


@notice_app.command()
def register(
    notice: str,
    client: str = typer.Option(..., help="pseudonymous client id (no names)"),
    district: str = typer.Option(...),
    kind: str = typer.Option("eviction", help="eviction (a notice) or outreach (uppsök)"),
    source: str = typer.Option("landlord", help="landlord, enforcement_authority or other"),
    eviction_date: date = typer.Option(None, help="the eviction date, if known"),
    pilot: str = typer.Option(None, help="housing pilot assigned at once"),
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """Register a notice that a tenant risks eviction, or an outreach assignment."""
    send_notice_step({
        "type": "register", "notice": notice, "kind": kind, "source": source,
        "client": client, "district": district, "pilot": pilot,
        "eviction_date": eviction_date.isoformat() if eviction_date else None,
    }, on, actor, as_json, command_id, data)


@notice_app.command("contact-attempt")
def contact_attempt(
    notice: str, reached: bool = typer.Option(..., "--reached/--not-reached"),
    channel: str = typer.Option("phone", help="phone, sms, letter, email, home_visit, other"),
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """The caseworker tried to reach the tenant (reached or not)."""
    send_notice_step({"type": "contact_attempt", "notice": notice, "reached": reached,
                      "channel": channel}, on, actor, as_json,
                     command_id, data)


@notice_app.command("assign-outreach")
def assign_outreach(
    notice: str, pilot: str = typer.Option(..., help="the housing pilot (bolots)"),
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """Assign outreach (a visit within 48 hours) to a housing pilot."""
    send_notice_step({"type": "assign_outreach", "notice": notice, "pilot": pilot},
                     on, actor, as_json, command_id, data)


@notice_app.command("outreach-visit")
def outreach_visit(
    notice: str, reached: bool = typer.Option(..., "--reached/--not-reached"),
    note: str = typer.Option("", help="a short note (no names)"),
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """A housing pilot's outreach visit (reached the tenant or not)."""
    send_notice_step({"type": "outreach_visit", "notice": notice, "reached": reached,
                      "note": note}, on, actor, as_json, command_id, data)


@notice_app.command()
def outcome(
    notice: str,
    outcome: str = typer.Option(..., help="contact_made, meeting_booked, support_granted, "
                                          "eviction_averted, eviction_executed"),
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """Record an outcome; eviction_averted and eviction_executed close the notice."""
    send_notice_step({"type": "outcome", "notice": notice, "outcome": outcome},
                     on, actor, as_json, command_id, data)


@notice_app.command("open-case")
def open_case(
    notice: str, case: str = typer.Option(..., help="the new housing case's id"),
    target_group: str = typer.Option(..., help="e.g. families_with_children"),
    district: str = typer.Option(None, help="default: the notice's district"),
    adults: int = 1, children: int = 0, housing_situation: str = "without_housing",
    referral: str = "other_unit",
    on: date = OnOption,
    actor: str = AsOption, as_json: bool = JsonOption, command_id: str = IdOption,
    data: Path = DataOption,
) -> None:
    """Open a housing case (its application) from the notice: the tenant lost the home."""
    send_notice_step({
        "type": "open_case", "notice": notice, "case": case, "target_group": target_group,
        "district": district, "household": {"adults": adults, "children": children},
        "housing_situation": housing_situation, "referral": referral,
    }, on, actor, as_json, command_id, data)


@notice_app.command()
def status(notice: str, as_json: bool = JsonOption, data: Path = DataOption) -> None:
    """Where a notice stands: its stage, the steps and outcomes allowed now, its deadlines."""
    from zoneinfo import ZoneInfo

    from interfaces.cli.main import call, configure_logs, out, settings_for

    settings = settings_for(data)
    configure_logs(settings)
    zone = ZoneInfo(settings.policy().time_zone)
    st = call(settings, lambda b: b.notice_status(notice), as_json)
    if as_json:
        print(json.dumps(st, ensure_ascii=False))
        return

    def local(moment: str | None) -> str:
        if not moment:
            return "—"
        return datetime.fromisoformat(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    out.print(f"[bold]notice {st['notice']}[/] ({st['kind']}): {st['stage']} — "
              f"{st['stage_label']}", highlight=False)
    if st.get("last_on"):
        out.print(f"last step on {st['last_on']}")
    if st.get("eviction_date"):
        out.print(f"eviction date {st['eviction_date']}")
    if st["stage"] != "closed":
        out.print(f"allowed now: {', '.join(st['allowed'])}; outcomes: "
                  f"{', '.join(st['outcomes'])}")
    if st.get("reach_deadline"):
        out.print(f"reach the tenant before {local(st['reach_deadline'])}"
                  + (f" (reached {st['reached_on']})" if st.get("reached_on") else ""))
    if st.get("outreach_due"):
        out.print(f"outreach visit before {local(st['outreach_due'])}"
                  + (" — [bold red]escalated[/]" if st.get("escalated") else ""))
    if st.get("case"):
        out.print(f"housing case {st['case']} opened from this notice")
