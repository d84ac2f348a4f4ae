"""A real nginx running ``deploy/nginx.conf`` in front of test workers.

The production file is used as it is, with only what a test run must change: the upstream
addresses (the workers' free ports), the listen address, the access log's path, and
``proxy_read_timeout`` (see ``READ_TIMEOUT``). Each substitution must match exactly once,
so a change to the production file that the test no longer covers fails here, loudly.
nginx itself runs from a main file of the test's own: its pid file, error log and temp
directories in the test's temp directory, on a free port, no root needed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
PRODUCTION_CONF = REPO / "deploy" / "nginx.conf"
HOW_TO_INSTALL = (
    "nginx is not installed: the proxy tests run a real nginx. "
    "Install it with `apt-get install nginx` (Debian/Ubuntu), or put an nginx binary on PATH."
)
UPSTREAMS = ("tickrelay-1:8000", "tickrelay-2:8000")
# The production read timeout is 75 s, far above the server's 20 s heartbeat. Testing that
# the heartbeat keeps an idle client through nginx at those values would take over a
# minute, so the test shortens both and keeps their relation: nginx gives up after 3 s of
# upstream silence, and the workers ping every second (their heartbeat_interval).
READ_TIMEOUT = "3s"
PRODUCTION_READ_TIMEOUT = "proxy_read_timeout 75s;"


class NginxNotFound(RuntimeError):
    pass


def find_nginx() -> str:
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )
    if found is None:
        raise NginxNotFound(HOW_TO_INSTALL)
    return found


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"deploy/nginx.conf: expected {old!r} once, found it {count} times")
    return text.replace(old, new)


def site_conf(worker_ports: tuple[int, int], port: int, access_log: Path) -> str:
    """deploy/nginx.conf with the test's addresses (and the shortened read timeout)."""
    lines = PRODUCTION_CONF.read_text().splitlines()
    # Comment lines go (they mention directives too); every directive stays as written.
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#")) + "\n"
    for upstream, worker_port in zip(UPSTREAMS, worker_ports, strict=True):
        text = _replace_once(text, f"server {upstream} ", f"server 127.0.0.1:{worker_port} ")
    text = _replace_once(text, "listen 80;", f"listen 127.0.0.1:{port};")
    text = _replace_once(text, "/var/log/nginx/access.log", str(access_log))
    return _replace_once(text, PRODUCTION_READ_TIMEOUT, f"proxy_read_timeout {READ_TIMEOUT};")


def main_conf(directory: Path, site: Path) -> str:
    """The main file a package's /etc/nginx/nginx.conf would be, in the test's directory."""
    user = pwd.getpwuid(os.geteuid())
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return f"""
# nginx switches its workers to this user only when started as root (as CI is): the
# test's own user, so they can use the temp directories below.
user {user.pw_name};
worker_processes 1;
daemon off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {site};
}}
"""


@dataclass
class Nginx:
    """A running nginx: its port, its access and error logs."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # nginx's fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(binary: str, directory: Path, worker_ports: tuple[int, int]) -> Nginx:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = directory / "tickrelay.conf"
    site.write_text(site_conf(worker_ports, port, directory / "access.log"))
    main = directory / "nginx.conf"
    main.write_text(main_conf(directory, site))
    check = subprocess.run(
        [binary, "-t", "-c", str(main), "-p", str(directory)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise AssertionError(f"nginx refuses the configuration:\n{check.stderr}")
    output = (directory / "nginx.out").open("wb")
    with output:
        process = subprocess.Popen(
            [binary, "-c", str(main), "-p", str(directory)], stdout=output, stderr=output
        )
    nginx = Nginx(port, process, directory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited at start:\n{nginx.error_log()}")
        try:
            httpx.get(f"{nginx.http}/healthz", timeout=0.5)
            return nginx
        except httpx.HTTPError:
            time.sleep(0.05)
    nginx.stop()
    raise AssertionError(f"nginx did not start:\n{nginx.error_log()}")
