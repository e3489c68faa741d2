"""The web pages' own settings (HOUSING_CHAIN_WEB_*)."""

from __future__ import annotations

from datetime import date

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOUSING_CHAIN_WEB_", extra="ignore")

    idle_minutes: int = Field(30, ge=1, le=24 * 60, description="signed out after this idle time")
    client_id: str = Field("housing-chain-web", description="the web client's id at the issuer")
    client_secret: str | None = Field(None, description="for an issuer that wants one")
    scope: str = "openid profile"
    secure_cookies: bool | None = Field(
        None, description="Secure cookies; default: when the request came over https")
    accessibility_contact: str | None = Field(
        None, description="where to report an accessibility problem (an e-mail address or a "
        "phone number), shown on the accessibility statement")
    accessibility_reviewed: date = Field(
        date(2026, 12, 2), description="the day the accessibility statement was last reviewed")
