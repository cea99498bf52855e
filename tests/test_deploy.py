"""compose.yaml is checked statically (no container engine here): the services the design names exist,
every TINGXIE_ variable it sets is a real setting, and each worker consumes the queue its tasks go to."""

from pathlib import Path

import yaml

from api import wire
from tingxie.queue import CPU_QUEUE, GPU_QUEUE
from tingxie.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_platform_services() -> None:
    services = _compose()["services"]
    assert {"api", "worker-gpu", "worker-cpu", "redis", "postgres", "minio", "flower", "migrations"} <= set(services)
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_compose_settings_are_real_settings() -> None:
    known = {f"TINGXIE_{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose()["services"].items():
        unknown = {key for key in service.get("environment", {}) if key.startswith("TINGXIE_")} - known
        assert not unknown, f"{name} sets unknown settings {unknown}"


def test_workers_consume_the_queues_their_tasks_use() -> None:
    services = _compose()["services"]
    assert services["worker-gpu"]["command"][services["worker-gpu"]["command"].index("-Q") + 1] == GPU_QUEUE
    assert services["worker-cpu"]["command"][services["worker-cpu"]["command"].index("-Q") + 1] == CPU_QUEUE


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
