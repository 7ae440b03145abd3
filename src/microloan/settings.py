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
