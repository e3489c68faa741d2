"""The web pages' own settings (HOUSING_CHAIN_WEB_*)."""

from __future__ import annotations

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
