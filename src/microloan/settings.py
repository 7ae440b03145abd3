"""Configuration from the environment (``MICROLOAN_*``), with the embedded defaults."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/microloan.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MICROLOAN_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # product terms (months) a draw may choose; a product may allow up to 36
    terms: tuple[int, ...] = Field(default=(3, 6, 9, 12, 18, 24))
    min_draw_fen: int = 10_000
    max_open_loans: int = 20
    min_limit_fen: int = 50_000
    max_limit_fen: int = 20_000_000
    autodebit_retries: int = 2
    # auto-debit runs at these times of the open date (Asia/Shanghai), once per slot
    autodebit_times: tuple[str, ...] = ("08:00", "14:00", "20:00")
    reminder_days: tuple[int, ...] = (3, 1)  # reminders this many days before a due date
    # end of day on PostgreSQL gives way to customers: while any were active in the last
    # eod_yield_window_s, it rests eod_yield × as long as each piece of its work took (0: never)
    eod_yield: float = Field(default=1.0, ge=0.0, le=10.0)
    eod_yield_window_s: float = Field(default=1.0, gt=0.0, le=60.0)

    # the simulated payment rail (servicing §2): its faults, decided per key by a seeded hash
    rail_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rail_timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rail_latency_ms: int = Field(default=0, ge=0, le=60_000)
    rail_seed: int = 0
    # payments: a payment sent this long ago without a recorded answer is asked about again
    rail_resend_after_s: float = Field(default=60.0, ge=0.0)
    rail_sends: int = Field(default=3, ge=1, le=10)  # calls per payment in one pass, at most
    rail_answer_wait_s: float = Field(default=10.0, ge=0.0)  # waiting on another payer's call
    worker_poll_s: float = Field(default=1.0, gt=0.0)
    worker_batch: int = Field(default=100, ge=1, le=10_000)

    # personal data at rest: a base64 key of 32 bytes, or a file holding one. On the embedded
    # SQLite default the file is created on first use; elsewhere a key must be configured.
    data_key: str | None = None
    data_key_file: str = "var/data.key"
    # the synthetic population the simulated providers read (issue 3 demo and tests)
    population_path: str = "var/population.parquet"
    # onboarding
    age_min: int = 18
    age_max: int = 60
    consent_versions: dict[str, str] = Field(
        default={"credit_report": "v1", "sensitive_pi": "v1", "loan_agreement": "v1"}
    )
    # invitations and share rewards
    invitation_valid_days: int = 30
    referral_campaign: str = "2026-share"
    referral_reward_fen: int = 500  # each side, per granted invitee
    referral_double_after: int = 5  # the inviter's reward doubles after this many successes
    referral_cap_fen: int = 20_000  # per inviter per campaign

    # the HTTP API (issue 5). Channel gateways sign each borrower request with their channel's
    # secret (HMAC-SHA256); secrets as {"wechat": "<base64 of ≥ 32 bytes>", …}, or a file holding
    # that JSON, created with fresh secrets on first use on the embedded SQLite default
    gateway_secrets: dict[str, str] = Field(default={})
    gateway_secrets_file: str = "var/gateway-secrets.json"
    gateway_window_s: int = Field(default=300, ge=10, le=3600)  # timestamp skew allowed
    # the borrower pages' demo login, standing in for the channel gateway: None is on for the
    # embedded SQLite database only; never switch it on where real borrowers are
    demo_login: bool | None = None
    # borrower requests a server process runs at once, each in a worker thread (more wait their
    # turn in order): Python runs one thread at a time, and more threads only make a request
    # with many database round trips wait for the interpreter again after each (docs/api.md)
    server_threads: int = Field(default=4, ge=1, le=64)
    # operator sessions (bearer tokens)
    operator_session_hours: float = Field(default=8.0, gt=0.0, le=24.0)
    # rate limits per identity ("N/second|minute|hour"; the `limits` library's notation), kept in
    # process memory by default, or shared through "redis://host:port" between server processes
    rate_limit_storage: str = "memory://"
    rate_limit_borrower: str = "120/minute"
    rate_limit_operator: str = "600/minute"
    rate_limit_operator_login: str = "10/minute"  # per address and per username
    rate_limit_public: str = "600/minute"  # per client address, on the public pages
