"""Server settings, read from the environment (prefix ``TICKRELAY_``) or given directly.

Every setting is also a ``tickrelay serve`` flag; the CLI builds a ``Settings`` from both,
so a bad value is refused at start with a message that names it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can tune. Defaults follow the protocol contract."""

    model_config = SettingsConfigDict(env_prefix="TICKRELAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    redis_url: str | None = None
    cluster_flush_ms: float = Field(5.0, ge=0, le=100)
    # Forwarded inputs reach a room's owner this long before its tick: more than a round
    # trip through Redis between two workers (on one host well under a millisecond).
    cluster_input_lead_ms: float = Field(3.0, ge=0, le=100)
    # A dead worker's lease lapses after this; its rooms are taken over soon after.
    cluster_lease_ms: float = Field(2000.0, ge=300, le=60000)
    # A room's state is saved at most this often while it changes (its roster at once).
    checkpoint_ms: float = Field(1000.0, ge=50, le=60000)

    auth_secret: str | None = None
    auth_leeway: float = Field(5.0, ge=0, le=30)
    admin_token: str | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )

    tick_rate: int = Field(20, ge=1, le=128)
    max_players: int = Field(16, ge=1, le=1024)
    max_spectators: int = Field(64, ge=0, le=10000)
    create_rooms_on_join: bool = True
    idle_timeout: float = Field(30.0, ge=0)
    resume_grace: float = Field(15.0, ge=0)
    logic_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_rooms: int = Field(10_000, ge=1)
    room_create_rate: float = Field(5.0, gt=0)
    room_create_burst: int = Field(50, ge=1)

    max_message_size: int = Field(64 * 1024, ge=256, le=16 * 1024 * 1024)
    max_player_state: int = Field(16 * 1024, ge=64)
    max_room_state: int = Field(256 * 1024, ge=64)
    reliable_queue_messages: int = Field(1024, ge=1)
    reliable_queue_bytes: int = Field(1024 * 1024, ge=1024)
    write_high_water: int = Field(64 * 1024, ge=1024)
    slow_consumer_timeout: float = Field(20.0, gt=0)
    max_body_size: int = Field(32 * 1024, ge=1024)
    max_request_head: int = Field(16 * 1024, ge=1024)
    handshake_timeout: float = Field(10.0, gt=0)

    input_rate: float = Field(60.0, gt=0)
    input_burst: int = Field(120, ge=1)
    event_rate: float = Field(30.0, gt=0)
    event_burst: int = Field(60, ge=1)
    flood_close_after: float = Field(5.0, gt=0)
    message_bytes_rate: float = Field(128 * 1024, gt=0)
    message_bytes_burst: int = Field(256 * 1024, ge=256)

    heartbeat_interval: float = Field(20.0, gt=0)
    heartbeat_timeout: float = Field(20.0, gt=0)
    max_connections: int = Field(10_000, ge=1)
    drain_seconds: float = Field(5.0, ge=0)
    permessage_deflate: bool = False
    log_level: str = "info"

    @field_validator("allowed_origins", "forwarded_allow_ips", "logic_modules", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """Environment variables carry lists as ``a,b,c``: friendlier than JSON in a shell."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        """uvicorn takes a mistyped address for a literal that never matches: refuse it."""
        for item in value:
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address, a network or *") from None
        return value

    @model_validator(mode="after")
    def _burst_holds_a_message(self) -> Settings:
        """A burst below the largest message would refuse that message forever."""
        if self.message_bytes_burst < self.max_message_size:
            raise ValueError("message_bytes_burst must be at least max_message_size")
        return self

    @model_validator(mode="after")
    def _workers_need_redis(self) -> Settings:
        """In-memory rooms live in one process: several workers would each see other rooms."""
        if self.workers > 1 and not self.redis_url:
            raise ValueError("workers > 1 needs redis_url (in-memory rooms cannot span processes)")
        return self

    @model_validator(mode="after")
    def _workers_need_a_fixed_port(self) -> Settings:
        """Port 0 would give each worker a port of its own, and clients none to find."""
        if self.workers > 1 and self.port == 0:
            raise ValueError("workers > 1 needs a fixed port (port 0 picks one per worker)")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_secret)
