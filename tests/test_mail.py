"""E-mail reminders against a real local SMTP server (aiosmtpd), with the outbox on SQLite and
PostgreSQL; and a retried activity on the real time-skipping Temporal server."""

from __future__ import annotations

import concurrent.futures
import email
import email.policy
import uuid
from datetime import date, timedelta

import pytest
from aiosmtpd.controller import Controller
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from activities.notify import Notifier, message_id
from config.settings import Settings
from tests.stack import free_port
from workflows.messages import ReminderDelivery


class Collect:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def mail_settings(tmp_path, smtp) -> Settings:
    return Settings(data=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                    mail_sender="housing-chain@vallentuna.example", mail_domain="vallentuna.example",
                    supervisor="enhetschef.berg", mail_language="en")


def received(smtp) -> list[tuple[list[str], email.message.EmailMessage]]:
    return smtp.handler.received


def reminder(case: str = "c1", kind: str = "home_visit", due: date = date(2026, 5, 1),
             escalation: bool = False, to_actor: str = "bolots.ahmed") -> ReminderDelivery:
    return ReminderDelivery(
        reminder_id=ReminderDelivery.make_id(case, kind, due, escalation), case=case, kind=kind,
        due=due, to_actor=to_actor, escalation=escalation,
        text="A home visit is due: record it with housing-chain record-visit.",
    )


def test_reminder_ids_are_deterministic():
    assert ReminderDelivery.make_id("c1", "home_visit", date(2026, 5, 1)) == (
        "case-c1:home_visit:2026-05-01")
    assert ReminderDelivery.make_id("c1", "home_visit", date(2026, 5, 1), escalation=True) == (
        "case-c1:home_visit:2026-05-01:escalation")
    mid = message_id("case-c1:home_visit:2026-05-01", "vallentuna.example")
    assert mid == message_id("case-c1:home_visit:2026-05-01", "vallentuna.example")
    assert mid.startswith("<case-c1.home_visit.2026-05-01.") and mid.endswith("@vallentuna.example>")
    assert mid != message_id("case-c1:home_visit:2026-05-01:escalation", "vallentuna.example")


def test_a_reminder_arrives_once_with_to_subject_and_message_id(backend, mail_settings, smtp):
    store_env, _ = backend
    notifier = Notifier(mail_settings, env=store_env)
    d = reminder()
    assert notifier.deliver(d) == "sent"
    assert notifier.deliver(d) == "already sent"
    assert Notifier(mail_settings, env=store_env).deliver(d) == "already sent"  # a new worker

    assert len(received(smtp)) == 1
    rcpt, msg = received(smtp)[0]
    assert rcpt == ["bolots.ahmed@vallentuna.example"]
    assert msg["To"] == "bolots.ahmed@vallentuna.example"
    assert msg["From"] == "housing-chain@vallentuna.example"
    assert msg["Subject"] == "Reminder: case c1, Support visit, due 2026-05-01"
    assert msg["Message-ID"] == message_id(d.reminder_id, "vallentuna.example")
    assert msg["X-Housing-Chain-Reminder"] == d.reminder_id
    assert "record-visit" in msg.get_content()
    if "SQLITE_DBNAME" in store_env:
        assert (mail_settings.data / "outbox.sqlite").exists()


def test_escalation_goes_to_the_supervisor(backend, mail_settings, smtp):
    notifier = Notifier(mail_settings, env=backend[0])
    assert notifier.deliver(reminder()) == "sent"
    escalation = reminder(escalation=True)
    assert notifier.deliver(escalation) == "sent"
    assert notifier.deliver(escalation) == "already sent"

    assert [rcpt for rcpt, _ in received(smtp)] == [["bolots.ahmed@vallentuna.example"],
                                                    ["enhetschef.berg@vallentuna.example"]]
    msg = received(smtp)[1][1]
    assert msg["To"] == "enhetschef.berg@vallentuna.example"
    assert msg["Subject"].startswith("Escalation: case c1, Support visit, due 2026-05-01")
    assert "bolots.ahmed" in msg["Subject"]
    assert msg["Message-ID"] == message_id(escalation.reminder_id, "vallentuna.example")


def test_an_escalation_kind_named_after_its_reminder_reads_plainly(mail_settings, smtp):
    d = ReminderDelivery(reminder_id="case-c2:escalation:home_visit:2026-05-01", case="c2",
                         kind="escalation:home_visit", due=date(2026, 5, 1),
                         to_actor="bolots.ahmed", escalation=True, text="Unanswered.")
    assert Notifier(mail_settings, env={}).deliver(d) == "sent"
    (rcpt, msg), = received(smtp)
    assert rcpt == ["enhetschef.berg@vallentuna.example"]
    assert msg["Subject"] == ("Escalation: case c2, Support visit, due 2026-05-01 "
                              "(unanswered reminder to bolots.ahmed)")


@pytest.mark.parametrize(("lang", "subject", "body"), [
    ("sv", "Påminnelse: ärende c1, Stödbesök, senast 2026-05-01", "Ärende: c1"),
    ("nb", "Påminnelse: sak c1, Oppfølgingsbesøk, frist 2026-05-01", "Sak: c1"),
])
def test_a_reminder_is_written_in_the_municipalitys_language(tmp_path, smtp, lang, subject,
                                                              body):
    settings = Settings(data=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                        mail_domain="vallentuna.example", mail_language=lang)
    assert Notifier(settings, env={}).deliver(reminder()) == "sent"
    (_, msg), = received(smtp)
    assert msg["Subject"] == subject
    assert body in msg.get_content() and "housing-chain status c1" in msg.get_content()
    assert "record it with" not in msg.get_content()  # the workflow's English sentence


def test_a_reminder_is_written_in_the_language_its_recipient_chose(tmp_path, smtp):
    from application.preferences import Preferences

    Preferences({}, tmp_path / "preferences.sqlite").choose_language("bolots.ahmed", "nb")
    settings = Settings(data=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                        mail_domain="vallentuna.example", mail_language="sv",
                        supervisor="enhetschef.berg")
    notifier = Notifier(settings, env={})
    assert notifier.deliver(reminder()) == "sent"
    assert notifier.deliver(reminder(case="c2", escalation=True)) == "sent"
    (_, to_pilot), (_, to_supervisor) = received(smtp)
    assert to_pilot["Subject"] == "Påminnelse: sak c1, Oppfølgingsbesøk, frist 2026-05-01"
    assert to_supervisor["Subject"].startswith("Eskalering: ärende c2")  # chose nothing: sv


def test_reminder_mails_are_swedish_unless_the_municipality_says_otherwise(tmp_path):
    assert Settings(data=tmp_path).mail_language == "sv"


def test_with_email_off_the_reminder_is_on_the_worklist_only(tmp_path, smtp):
    notifier = Notifier(Settings(data=tmp_path), env={})
    assert notifier.deliver(reminder()) == "worklist only"
    assert notifier.outbox.status(reminder().reminder_id) == "worklist_only"
    assert received(smtp) == []


def test_an_smtp_failure_raises_and_the_retry_sends(tmp_path, smtp):
    down = Settings(data=tmp_path, smtp_host="127.0.0.1", smtp_port=free_port())
    d = reminder()
    with pytest.raises(OSError):
        Notifier(down, env={}).deliver(d)
    up = down.model_copy(update={"smtp_port": smtp.port})
    notifier = Notifier(up, env={})
    assert notifier.outbox.status(d.reminder_id) == "pending"
    assert notifier.deliver(d) == "sent"
    assert len(received(smtp)) == 1


# --- a retried activity, through a real worker ------------------------------------------------

@workflow.defn(sandboxed=False)
class DeliverReminder:
    """What CaseWorkflow does with a reminder: the activity, retried on failure."""

    @workflow.run
    async def run(self, d: ReminderDelivery) -> str:
        return await workflow.execute_activity(
            "deliver_reminder", d, result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
        )


class LosesTheFirstReply(Notifier):
    """Sends, then fails the first attempt, as a worker crashing before it can reply does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[str] = []

    @activity.defn(name="deliver_reminder")
    def deliver(self, d: ReminderDelivery) -> str:
        result = super().deliver(d)
        self.results.append(result)
        if activity.info().attempt == 1:
            raise RuntimeError("the worker lost the activity's reply after sending")
        return result


async def test_a_retried_activity_after_sending_does_not_send_twice(time_skipping, mail_settings,
                                                                   smtp):
    notifier = LosesTheFirstReply(mail_settings, env={})
    queue = f"mail-{uuid.uuid4()}"
    d = reminder(case="r7", kind="follow_up", due=date(2026, 6, 30))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        async with Worker(time_skipping.client, task_queue=queue, workflows=[DeliverReminder],
                          activities=[notifier.deliver], activity_executor=executor):
            result = await time_skipping.client.execute_workflow(
                DeliverReminder.run, d, id=f"deliver-{uuid.uuid4()}", task_queue=queue)
    assert notifier.results == ["sent", "already sent"]
    assert result == "already sent"
    assert len(received(smtp)) == 1
    assert received(smtp)[0][1]["Message-ID"] == message_id(d.reminder_id, "vallentuna.example")
