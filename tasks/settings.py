"""klerk's settings, from the environment (prefix KLERK_) or a .env file in the working folder."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import ByteSize, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where klerk keeps its data and how it reaches its database and browser."""

    model_config = SettingsConfigDict(env_prefix="KLERK_", env_file=".env", extra="ignore")

    home: Path = Field(Path("."), description="Folder holding var/ and runs/.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in var/.")
    runs_dir: Path | None = Field(None, description="Where run folders go; default <home>/runs.")
    browser_path: str | None = Field(None, description="Chromium executable to use.")
    lock_stale_seconds: float = Field(60.0, description="A run lock older than this is dead.")
    subject_key: SecretStr | None = Field(None, description="HMAC key for persons in the trail.")
    app_url: str | None = Field(None, description="Override the app definition's base URL.")
    signing_key: Path | None = Field(None, description="Ed25519 key that signs checkpoints.")
    log_rotation: ByteSize = Field(
        ByteSize(20_000_000), gt=0, description="A run's klerk.log starts anew at this size."
    )
    # --- the scheduler (klerk serve) and its notifications
    schedules_dir: Path | None = Field(None, description="Schedule files; default in the package.")
    apps_dir: Path | None = Field(
        None, description="Your own app definitions (YAML), besides klerk's; default <home>/apps."
    )
    scheduler_poll_seconds: float = Field(
        2.0, gt=0, description="How often serve looks for pause, resume and run-now."
    )
    smtp_host: str | None = Field(None, description="Mail server for notifications.")
    smtp_port: int = Field(587, description="Its port (587 submission, 25 relay, 465 TLS).")
    smtp_starttls: bool = Field(True, description="Upgrade the connection with STARTTLS.")
    smtp_ssl: bool = Field(False, description="Implicit TLS from the start (port 465).")
    smtp_username: str | None = Field(None, description="Login at the mail server, if any.")
    smtp_password: SecretStr | None = Field(None, description="Its password.")
    smtp_sender: str | None = Field(None, description="From address of notifications.")
    smtp_recipients: str = Field("", description="Comma-separated; every schedule notifies them.")
    webhook_url: SecretStr | None = Field(None, description="Every schedule POSTs JSON here.")
    webhook_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer'.")
    report_base_url: str | None = Field(
        None, description="Where runs/ is served, for report links in notifications."
    )

    def database(self) -> str:
        """The database URL, defaulting to SQLite under var/."""
        if self.database_url:
            return self.database_url
        path = (self.home / "var" / "klerk.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    def runs(self) -> Path:
        """The folder for run folders."""
        return (self.runs_dir or self.home / "runs").resolve()

    def apps(self) -> Path:
        """The folder of the municipality's own app definitions (it need not exist)."""
        return (self.apps_dir or self.home / "apps").resolve()


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings()


def subject_key(current: Settings) -> bytes:
    """The key that pseudonymises persons in the trail: KLERK_SUBJECT_KEY (hex), else var/keys/.

    The municipality should hold this key and set it; without it klerk makes one under var/keys/
    (mode 0600) so that a fresh installation works, and says so in the operator log.
    """
    import os
    import secrets as random

    if current.subject_key is not None:
        text = current.subject_key.get_secret_value().strip()
        try:
            return bytes.fromhex(text)
        except ValueError:
            return text.encode("utf-8")
    path = (current.home / "var" / "keys" / "subject.key").resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(random.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def signing_key_path(current: Settings) -> Path:
    """The private key that signs trail checkpoints: KLERK_SIGNING_KEY, else var/keys/.

    Without one klerk makes a pair under var/keys/ (signing.key, mode 0600, and signing.pub,
    the file an auditor needs), so that a fresh installation works.
    """
    from tasks.signing import create_keys

    if current.signing_key is not None:
        return current.signing_key
    path = (current.home / "var" / "keys" / "signing.key").resolve()
    if not path.exists():
        create_keys(path)
    return path
