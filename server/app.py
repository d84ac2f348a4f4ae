"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from tickrelay.server import logic, logredact
from tickrelay.server.backplane import Backplane, create_backplane
from tickrelay.server.bodylimit import BodyLimit
from tickrelay.server.demo import router as demo_router
from tickrelay.server.endpoint import room_endpoint
from tickrelay.server.exposition import scrape_registry
from tickrelay.server.http import router
from tickrelay.server.metrics import Metrics
from tickrelay.server.registry import RoomRegistry
from tickrelay.server.services import Services
from tickrelay.server.settings import Settings
from tickrelay.server.validation import validation_error

log = logging.getLogger("tickrelay")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the backplane starts and the rooms are disposed with its lifespan."""
    settings = settings or Settings()
    logic.load_modules(settings.logic_modules)
    metrics = Metrics()
    backplane = create_backplane(settings.redis_url)
    registry = create_registry(settings, metrics, backplane)
    services = Services(settings=settings, registry=registry, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logredact.install()  # here, so it holds however uvicorn was started
        if not settings.auth_secret:
            log.warning(
                "AUTH IS OFF: anyone may join any room under any name. "
                "Set TICKRELAY_AUTH_SECRET (or --auth-secret) in production."
            )
        await backplane.start()
        await registry.start()
        try:
            yield
        finally:
            services.draining = True
            await registry.close()
            await services.tasks.close()
            await backplane.stop()

    app = FastAPI(title="tickrelay", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.state.prometheus = scrape_registry(services)
    app.add_middleware(BodyLimit, max_body_size=settings.max_body_size)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(router)
    app.include_router(demo_router)
    app.add_api_websocket_route("/ws/rooms/{room_path:path}", room_endpoint)
    app.add_api_websocket_route("/ws/rooms", room_endpoint)
    return app


def create_registry(settings: Settings, metrics: Metrics, backplane: Backplane) -> RoomRegistry:
    """One process keeps its rooms to itself; with a Redis URL they are shared. The cluster
    is imported only then: the single-process path does not even load it."""
    if not settings.redis_url:
        return RoomRegistry(settings, metrics, backplane)
    from tickrelay.server.cluster.registry import ClusterRegistry

    return ClusterRegistry(settings, metrics, backplane)


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory tickrelay.server.app:app_from_env`` (settings from the env)."""
    return create_app(Settings())
