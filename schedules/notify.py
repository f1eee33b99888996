"""Notifications about fires: an e-mail over SMTP and a JSON POST to a webhook.

A notification holds no personal data: the schedule, the task, the outcome, the counts per item
state, the run id and where its report is. Never an item key, a value or a message of a row.
Sending never raises: a failure is logged and written in the fire's history.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from loguru import logger

from schedules.definition import Event, NotifySpec
from schedules.state import local
from tasks import __version__
from tasks.privacy import redact
from tasks.settings import Settings

_TITLES = {
    Event.FAILED: "failed",
    Event.NOT_ALL_DONE: "finished with items not done",
    Event.MISSED: "missed: did not run",
    Event.SKIPPED: "skipped",
    Event.INTERRUPTED: "interrupted (resumable)",
    Event.FINISHED: "finished",
}


@dataclass(frozen=True)
class Notice:
    """What a notification says about one fire."""

    schedule: str
    task: str
    event: Event
    fire_id: int
    planned_at: dt.datetime | None
    fired_at: dt.datetime
    zone: dt.tzinfo
    host: str
    reason: str = ""
    run_id: str | None = None
    run_state: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    report: str | None = None

    def subject(self) -> str:
        """The e-mail subject."""
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"[klerk] {self.schedule}: {_TITLES[self.event]}{run}"

    def text(self) -> str:
        """The e-mail body: plain text, no personal data."""
        lines = [
            f"Schedule   {self.schedule} (task {self.task})",
            f"Outcome    {_TITLES[self.event]}",
            f"Planned    {local(self.planned_at, self.zone) if self.planned_at else 'run now'}",
            f"Fired      {local(self.fired_at, self.zone)} on {self.host}",
        ]
        if self.reason:
            lines.append(f"Why        {redact(self.reason)}")
        if self.run_id:
            lines.append(f"Run        {self.run_id} ({self.run_state or '-'})")
            shown = ", ".join(
                f"{state.replace('_', ' ')} {n}" for state, n in sorted(self.counts.items())
            )
            lines.append(f"Items      {shown or 'none'}")
            lines.append(f"Report     {self.report or '-'}")
            lines.append("")
            lines.append(f"Details: klerk runs show {self.run_id} --open")
            if self.run_state in ("interrupted", "aborted", "running"):
                lines.append(f"Continue:  klerk resume {self.run_id}")
        lines.append(f"History: klerk schedule history {self.schedule}")
        return "\n".join(lines) + "\n"

    def payload(self) -> dict[str, object]:
        """The webhook's JSON body."""
        return {
            "source": "klerk",
            "klerk_version": __version__,
            "event": self.event.value,
            "schedule": self.schedule,
            "task": self.task,
            "fire_id": self.fire_id,
            "planned_at": self.planned_at.isoformat() if self.planned_at else None,
            "fired_at": self.fired_at.isoformat(),
            "host": self.host,
            "reason": redact(self.reason),
            "run_id": self.run_id,
            "run_state": self.run_state,
            "counts": dict(self.counts),
            "report": self.report,
            "summary": f"{self.schedule}: {_TITLES[self.event]}",
        }


def recipients(spec: NotifySpec, current: Settings) -> list[str]:
    """The schedule's addresses plus KLERK_SMTP_RECIPIENTS, each once."""
    configured = [a.strip() for a in current.smtp_recipients.split(",") if a.strip()]
    return list(dict.fromkeys([*spec.email, *configured]))


def webhooks(spec: NotifySpec, current: Settings) -> list[str]:
    """The schedule's webhook plus KLERK_WEBHOOK_URL."""
    urls = [spec.webhook] if spec.webhook else []
    if current.webhook_url is not None:
        urls.append(current.webhook_url.get_secret_value())
    return list(dict.fromkeys(urls))


def send(notice: Notice, spec: NotifySpec, current: Settings) -> list[str]:
    """Send `notice` to every target; returns one line per target saying how it went."""
    results = []
    addresses = recipients(spec, current)
    if addresses:
        results.append(_email(notice, addresses, current))
    for url in webhooks(spec, current):
        results.append(_webhook(notice, url, current))
    if not results:
        results.append("nobody: no notification target")
    return results


def _email(notice: Notice, addresses: list[str], current: Settings) -> str:
    if not current.smtp_host or not current.smtp_sender:
        logger.error(
            "cannot e-mail about schedule {}: set KLERK_SMTP_HOST and KLERK_SMTP_SENDER",
            notice.schedule,
        )
        return "e-mail: not sent (KLERK_SMTP_HOST and KLERK_SMTP_SENDER are needed)"
    message = EmailMessage()
    message["Subject"] = notice.subject()
    message["From"] = current.smtp_sender
    message["To"] = ", ".join(addresses)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=notice.host or None)
    message.set_content(notice.text())
    try:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if current.smtp_ssl:
            client = smtplib.SMTP_SSL(
                current.smtp_host, current.smtp_port, timeout=30, context=context
            )
        else:
            client = smtplib.SMTP(current.smtp_host, current.smtp_port, timeout=30)
        with client:
            client.ehlo()
            if current.smtp_starttls and not current.smtp_ssl:
                client.starttls(context=context)
                client.ehlo()
            if current.smtp_username:
                password = current.smtp_password.get_secret_value() if current.smtp_password else ""
                client.login(current.smtp_username, password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.error("e-mail about schedule {} failed: {}", notice.schedule, exc)
        return f"e-mail: failed ({exc.__class__.__name__}: {exc})"
    logger.info("e-mailed {} recipient(s) about schedule {}", len(addresses), notice.schedule)
    return f"e-mail to {len(addresses)} recipient(s): sent"


def _webhook(notice: Notice, url: str, current: Settings, attempts: int = 3) -> str:
    body = json.dumps(notice.payload(), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": f"klerk/{__version__}"}
    if current.webhook_token is not None:
        headers["Authorization"] = f"Bearer {current.webhook_token.get_secret_value()}"
    shown = url.split("?", 1)[0]  # a query string may hold a token
    problem = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status = response.status
            logger.info(
                "webhook {} answered HTTP {} for schedule {}", shown, status, notice.schedule
            )
            return f"webhook: HTTP {status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if exc.code < 500:
                break  # the receiver refuses this message: trying again will not help
        except (OSError, ValueError) as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
        if attempt < attempts:
            time.sleep(attempt)
    logger.error("webhook {} failed for schedule {}: {}", shown, notice.schedule, problem)
    return f"webhook: failed ({problem})"
