"""``tickrelay serve`` and ``tickrelay token``.

Every setting is a flag of ``serve`` (``--tick-rate`` for ``tick_rate``), read on top of the
``TICKRELAY_*`` environment; a bad value stops the start with one line that names it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings
from typing import Any, get_args

from pydantic import ValidationError

from tickrelay.server.settings import Settings

PROG = "tickrelay"
GRACEFUL_SHUTDOWN_SECONDS = 5.0
"""How long uvicorn's shutdown waits for open connections after the drain."""
STOP_MARGIN_SECONDS = 5.0
"""What a supervisor allows a worker beyond its drain and shutdown before killing it."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    return "list" in str(annotation)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags leave the environment's value in force."""
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        default = field.get_default(call_default_factory=True)
        help_text = f"(env TICKRELAY_{name.upper()}; default {default!r})"
        if _is_bool(annotation):
            parser.add_argument(
                _flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif _is_list(annotation):
            parser.add_argument(
                _flag(name),
                dest=name,
                default=argparse.SUPPRESS,
                help="comma-separated " + help_text,
            )
        else:
            kind = get_args(annotation)[0] if get_args(annotation) else annotation
            parser.add_argument(
                _flag(name),
                dest=name,
                default=argparse.SUPPRESS,
                type=kind if kind in (int, float) else str,
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Multiplayer game-state relay.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    add_settings_flags(serve)
    token = commands.add_parser("token", help="mint a dev token (HS256 JWT)")
    token.add_argument("--sub", required=True, help="the player id")
    token.add_argument("--room", action="append", dest="rooms", help="a room it may join")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
    token.add_argument("--spectate-only", action="store_true")
    token.add_argument(
        "--secret",
        default=os.environ.get("TICKRELAY_AUTH_SECRET"),
        help="signing secret (default: TICKRELAY_AUTH_SECRET)",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    values = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return Settings(**values)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    return f"bad setting {where}: {message}" if where else f"bad settings: {message}"


def freeze_startup_objects() -> None:
    """Take everything that exists before the first player out of the cyclic GC's sight.

    Modules, classes and the app live as long as the process, yet every full collection
    walks them again: at 880 players they were 64k of the 100k tracked objects, and
    freezing them cut the longest full-collection pause from 111-121 ms to 51-65 ms
    (``gc.callbacks``, two runs each). Only done in the process ``tickrelay serve`` owns:
    an app embedded elsewhere keeps its host's GC settings.
    """
    gc.collect()
    gc.freeze()


def supervise(settings: Settings) -> int:
    """``--workers N`` above 1: this process only starts and watches N workers."""
    from tickrelay.server.supervisor import Supervisor

    stop_timeout = settings.drain_seconds + GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS
    return Supervisor(settings, stop_timeout).run()


def serve(settings: Settings) -> int:
    """One process serving, alone or as a supervisor's worker."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from tickrelay.server.app import create_app
    from tickrelay.server.drain import DrainingServer
    from tickrelay.server.httphead import bounded_http_protocol
    from tickrelay.server.transport import TickrelayWebSocketProtocol
    from tickrelay.server.worker import ChildWorker, log_config

    if settings.workers > 1:
        return supervise(settings)
    worker = ChildWorker.from_environment()
    if worker is not None:
        worker.exit_with_parent()
    try:
        app = create_app(settings)
    except (ValueError, ImportError) as exc:
        return _fail(str(exc))
    freeze_startup_objects()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_http_protocol(settings.handshake_timeout, settings.max_request_head),
        h11_max_incomplete_event_size=settings.max_request_head,
        ws=TickrelayWebSocketProtocol,
        ws_max_size=settings.max_message_size,
        ws_ping_interval=settings.heartbeat_interval,
        ws_ping_timeout=settings.heartbeat_timeout,
        ws_per_message_deflate=settings.permessage_deflate,
        forwarded_allow_ips=",".join(settings.forwarded_allow_ips),
        log_config=LOGGING_CONFIG if worker is None else log_config(worker.index),
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    services = app.state.services

    def start_draining() -> None:
        services.draining = True

    if worker is not None:
        return worker.serve(config, settings.drain_seconds, start_draining)
    DrainingServer(config, settings.drain_seconds, start_draining).run()
    return 0


def mint_token(args: argparse.Namespace) -> int:
    from tickrelay.server.auth import mint

    if not args.secret:
        return _fail("no secret: pass --secret or set TICKRELAY_AUTH_SECRET")
    if len(args.secret.encode()) < 32:
        print(f"{PROG}: warning: secrets under 32 bytes are easy to guess", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT's own multi-line version of the same warning
        token = mint(
            args.secret, args.sub, rooms=args.rooms, ttl=args.ttl, spectate_only=args.spectate_only
        )
    print(token)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token":
        return mint_token(args)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        return _fail(_describe(exc))
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
