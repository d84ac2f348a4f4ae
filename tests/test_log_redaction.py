"""Secrets in URLs never reach the log: a logged JWT or resume token is a stolen seat."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import SECRET
from tickrelay.client import connect
from tickrelay.server.auth import mint

LOGGING = {"auth_secret": SECRET, "log_level": "info", "resume_grace": 30}


async def test_tokens_and_resume_tokens_in_the_query_are_not_logged(servers, room_id):
    server = servers.get(**LOGGING)
    token = mint(SECRET, "alice")
    first = await connect(server.ws, room_id, token=token)
    resume = first.resume_token
    assert resume
    await first.close()
    async with await connect(server.ws, room_id, token=token, resume=resume) as back:
        assert back.resumed
    await asyncio.sleep(0.2)  # let the access lines reach the file
    log = server.log()
    assert f"/ws/rooms/{room_id}" in log  # the lines are there, with their paths
    assert "token=[redacted]" in log and "resume=[redacted]" in log
    assert token not in log
    assert resume not in log


async def test_query_values_of_http_requests_are_not_logged(servers):
    server = servers.get(**LOGGING)
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.get("/rooms", params={"token": "http-secret-value", "limit": 5})
    assert response.status_code == 200
    await asyncio.sleep(0.2)
    log = server.log()
    assert "GET /rooms?token=[redacted]&limit=[redacted]" in log
    assert "http-secret-value" not in log
