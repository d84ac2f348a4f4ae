"""The deployment files, read statically: no container engine runs here.

docker-compose.yml, the Dockerfile, deploy/nginx.conf and deploy/prometheus.yml must agree
with each other and with the server: every TICKRELAY_* variable is a real setting with a
valid value, every worker the proxy and Prometheus name exists on the port it listens on,
start order follows health checks, and the image runs as an unprivileged user. (PyYAML
comes with uvicorn[standard], a dependency of the server.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickrelay.server.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = {name: svc for name, svc in SERVICES.items() if name.startswith("tickrelay")}
NGINX_CONF = (REPO / "deploy" / "nginx.conf").read_text()
PROMETHEUS = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc ")
VERSIONED_TAG = re.compile(r":v?\d+(\.\d+){1,2}[\w.-]*(@sha256:[0-9a-f]{64})?$")


def resolved(value: object) -> str:
    """A compose value with ``${VAR:-default}`` given its default, as with an empty shell."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: resolved(value) for key, value in env.items()}


def worker_settings(service: dict[str, Any]) -> Settings:
    """The settings the worker would start with (environment only, as in the image)."""
    values = {
        key.removeprefix("TICKRELAY_").lower(): value
        for key, value in environment(service).items()
        if key.startswith("TICKRELAY_")
    }
    return Settings.model_validate(values)


def nginx_upstreams() -> set[str]:
    block = re.search(r"upstream tickrelay \{(.*?)\}", NGINX_CONF, re.S)
    assert block is not None, "deploy/nginx.conf has no upstream tickrelay"
    lines = [line.split("#")[0] for line in block.group(1).splitlines()]
    return {m.group(1) for line in lines if (m := re.search(r"^\s*server\s+(\S+)", line))}


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into stages."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def build_arg_default(name: str) -> str:
    found = re.search(rf"^ARG {name}=(\S+)", DOCKERFILE, re.M)
    assert found is not None, f"Dockerfile has no ARG {name} with a default"
    return found.group(1)


# Compose -------------------------------------------------------------------------------


def test_compose_runs_redis_two_or_more_workers_and_nginx():
    assert "redis" in SERVICES
    assert "nginx" in SERVICES
    assert len(WORKERS) >= 2


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_tickrelay_variable_in_compose_is_a_real_setting(name):
    for key in environment(SERVICES[name]):
        if key.startswith("TICKRELAY_"):
            setting = key.removeprefix("TICKRELAY_").lower()
            assert setting in Settings.model_fields, f"{name}: {key} is no setting"


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_every_worker_starts_with_valid_settings_on_redis(name):
    settings = worker_settings(WORKERS[name])
    assert settings.redis_url is not None
    assert settings.redis_url.startswith("redis://redis:")
    assert settings.host == "0.0.0.0"


def test_the_proxy_upstreams_are_the_workers_on_the_ports_they_listen_on():
    listening = {f"{name}:{worker_settings(svc).port}" for name, svc in WORKERS.items()}
    assert nginx_upstreams() == listening
    for svc in WORKERS.values():
        assert str(worker_settings(svc).port) in [str(port) for port in svc.get("expose", [])]


def test_prometheus_scrapes_every_worker_directly():
    listening = {f"{name}:{worker_settings(svc).port}" for name, svc in WORKERS.items()}
    job = next(job for job in PROMETHEUS["scrape_configs"] if job["job_name"] == "tickrelay")
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    assert targets == listening
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_workers_start_after_redis_is_healthy_and_nginx_after_every_worker_is():
    assert "healthcheck" in SERVICES["redis"]
    for svc in WORKERS.values():
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    nginx_needs = SERVICES["nginx"]["depends_on"]
    assert set(nginx_needs) == set(WORKERS)
    assert all(need["condition"] == "service_healthy" for need in nginx_needs.values())


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_a_worker_is_healthy_when_ready_for_players(name):
    check = " ".join(WORKERS[name]["healthcheck"]["test"])
    assert f":{worker_settings(WORKERS[name]).port}/readyz" in check


def seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert found is not None, duration
    return float(found.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[found.group(2)]


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_a_stopping_worker_has_time_to_drain(name):
    """Compose's default 10 s would kill a worker mid-drain when drain_seconds + 5 > 10."""
    drain = worker_settings(WORKERS[name]).drain_seconds
    assert seconds(WORKERS[name]["stop_grace_period"]) > drain + 5


def test_nginx_runs_the_config_from_deploy():
    mounts = SERVICES["nginx"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_file_a_service_mounts_exists(name):
    for mount in SERVICES[name].get("volumes", []):
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"


# Images built here are the Dockerfile's, which pins its base (tested below).
PULLED = sorted(name for name, svc in SERVICES.items() if "build" not in svc)


@pytest.mark.parametrize("name", PULLED)
def test_every_pulled_image_is_pinned_to_a_version(name):
    image = SERVICES[name]["image"]
    assert VERSIONED_TAG.search(image), f"{name}: {image} is not pinned to a version"


def test_monitoring_runs_only_in_its_profile():
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["monitoring"]
    core = ("redis", "nginx", *WORKERS)
    assert all("profiles" not in SERVICES[name] for name in core)


# Dockerfile ----------------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_and_copies_only_the_build_result():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert any(line.startswith("COPY --from=build ") for line in final)
    assert not any(line.startswith("COPY . ") for line in final)


def test_the_base_image_is_pinned_to_a_full_version():
    base = build_arg_default("PYTHON_IMAGE")
    assert re.search(r":3\.11\.\d+-slim", base), base
    assert VERSIONED_TAG.search(base), base
    for stage in dockerfile_stages():
        assert stage[0].split()[1].startswith("${PYTHON_IMAGE}")


def test_the_final_stage_runs_as_an_unprivileged_user():
    users = [line.split()[1] for line in dockerfile_stages()[-1] if line.startswith("USER ")]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_the_final_stage_installs_no_compiler():
    final = " ".join(dockerfile_stages()[-1]).lower()
    for compiler in COMPILERS:
        assert f" {compiler}" not in final, f"the final stage mentions {compiler.strip()}"
    assert "pip install" not in final


def test_the_image_health_check_asks_readyz_on_the_port_it_exposes():
    final = dockerfile_stages()[-1]
    exposed = [line.split()[1] for line in final if line.startswith("EXPOSE ")]
    assert exposed == ["8000"]
    assert "TICKRELAY_PORT=8000" in " ".join(final)
    health = next(line for line in final if line.startswith("HEALTHCHECK "))
    assert "127.0.0.1:8000/readyz" in health


def test_the_build_context_leaves_out_git_and_tests():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored
    assert "tests" in ignored
