"""compose.yaml is checked statically (no container engine here): the services the design names exist,
every TINGXIE_ variable it sets is a real setting, and each worker consumes the queue its tasks go to."""

from pathlib import Path

import yaml

from api import wire
from tingxie.queue import CPU_LANE, CPU_QUEUE, GPU_LANE, GPU_QUEUE
from tingxie.runner import interactive_worker_command
from tingxie.settings import Settings
from worker.niceness import takes_bulk_work

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_platform_services() -> None:
    services = _compose()["services"]
    platform = {"api", "worker-gpu", "worker-cpu", "worker-interactive", "redis", "postgres", "minio", "flower"}
    assert platform | {"migrations"} <= set(services)
    for worker in ("worker-gpu", "worker-interactive"):
        gpu = services[worker]["deploy"]["resources"]["reservations"]["devices"][0]
        assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_compose_settings_are_real_settings() -> None:
    known = {f"TINGXIE_{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose()["services"].items():
        unknown = {key for key in service.get("environment", {}) if key.startswith("TINGXIE_")} - known
        assert not unknown, f"{name} sets unknown settings {unknown}"


def _queues(command: list[str]) -> list[str]:
    return command[command.index("-Q") + 1].split(",")


def test_workers_consume_the_queues_their_tasks_use() -> None:
    """The cpu and gpu workers take interactive jobs' lanes too, so those are done without an interactive
    worker; the interactive worker takes nothing else, as `make serve` runs it."""
    services = _compose()["services"]
    assert _queues(services["worker-gpu"]["command"]) == [GPU_QUEUE, GPU_LANE]
    assert _queues(services["worker-cpu"]["command"]) == [CPU_QUEUE, CPU_LANE]
    assert _queues(services["worker-interactive"]["command"]) == _queues(interactive_worker_command())
    assert set(_queues(interactive_worker_command())) == {CPU_LANE, GPU_LANE}


def test_bulk_workers_yield_the_cores_between_containers() -> None:
    """Each container is a cgroup of its own, where the workers' nice values order nothing: a bulk worker's
    `cpu_shares` is below the default 1024, the API's and the interactive worker's are not lowered."""
    services = _compose()["services"]
    for name, service in services.items():
        if "command" in service and "worker" in service["command"]:
            bulk = takes_bulk_work(set(_queues(service["command"])))
            assert (service.get("cpu_shares", 1024) < 1024) == bulk, name
    assert "cpu_shares" not in services["api"]


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in ("tingxie", "api", "worker", "migrations"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_images_and_compose_require_api_keys() -> None:
    """They publish the API on the network, where the keyless local mode must never apply."""
    assert "ENV TINGXIE_AUTH_REQUIRED=true" in (ROOT / "deploy" / "Dockerfile").read_text()
    api_env = _compose()["services"]["api"]["environment"]
    assert api_env["TINGXIE_AUTH_REQUIRED"] == "true"


def test_the_image_serves_with_json_protocol_errors() -> None:
    """uvicorn's own answer to bytes that are not HTTP is plain text unless it runs tingxie's protocol."""
    cmd = next(line for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert f'"--http", "{wire.PROTOCOL}"' in cmd
