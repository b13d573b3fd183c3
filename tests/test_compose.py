"""compose.yaml's structure (there is no Docker engine here), and docker-compose's own validation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and bool(re.match(r"^v?\d+\.\d+\.\d+", tag))


def flags(command: list[str]) -> dict[str, str]:
    return dict(
        item.removeprefix("--").split("=", 1) if "=" in item else (item.removeprefix("--"), "") for item in command
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("compose.yaml")


def test_three_services_with_pinned_images_healthchecks_and_restart(compose):
    services = compose["services"]
    assert set(services) == {"vllm", "chroma", "api"}
    for name, service in services.items():
        assert pinned(service["image"]), f"{name}: image {service['image']} is not pinned to a version"
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["retries"] >= 3 and "start_period" in check, name
        assert service["restart"] == "unless-stopped"


def test_vllm_serves_phi3_with_the_longrope_fix_on_a_gpu(compose):
    vllm = compose["services"]["vllm"]
    image, _, tag = vllm["image"].rpartition(":")
    assert image == "vllm/vllm-openai"
    # PR #27431 (LongRoPE under concurrency) is in every release from v0.11.1 on.
    assert tuple(int(p) for p in tag.removeprefix("v").split(".")) >= (0, 11, 1)
    args = flags(vllm["command"])
    assert args["model"] == "${VLLM_MODEL:-microsoft/Phi-3-mini-128k-instruct}"
    assert args["served-model-name"].startswith("${VLLM_SERVED_MODEL_NAME:-")
    assert args["max-model-len"] == "${VLLM_MAX_MODEL_LEN:-32768}"
    assert args["gpu-memory-utilization"].startswith("${VLLM_GPU_MEMORY_UTILIZATION:-")
    assert "enable-prefix-caching" in args
    assert not any("trust-remote-code" in item for item in vllm["command"])
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert vllm["ipc"] == "host"
    assert "hf-cache:/root/.cache/huggingface" in vllm["volumes"]
    assert vllm["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert int(vllm["healthcheck"]["start_period"].rstrip("s")) >= 600  # download + warm-up


def test_chroma_persists_to_a_volume_and_checks_its_heartbeat(compose):
    chroma = compose["services"]["chroma"]
    assert chroma["image"].startswith("chromadb/chroma:")
    assert "chroma-data:/data" in chroma["volumes"]
    assert "/api/v2/heartbeat" in " ".join(chroma["healthcheck"]["test"])


def test_api_is_built_here_and_waits_for_healthy_dependencies(compose):
    api = compose["services"]["api"]
    assert api["build"]["context"] == "."
    assert api["command"][:2] == ["rag", "serve"]  # the same command the tests run
    assert api["depends_on"] == {
        "vllm": {"condition": "service_healthy"},
        "chroma": {"condition": "service_healthy"},
    }
    env = api["environment"]
    assert env["RAG_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert env["RAG_CHROMA_URL"] == "http://chroma:8000"
    assert env["RAG_API_KEYS"] == "${RAG_API_KEYS:-}" and env["RAG_API_KEYS_FILE"] == "${RAG_API_KEYS_FILE:-}"
    assert any(v.endswith(":/data") for v in api["volumes"])
    assert any(p.endswith(":8000") for p in api["ports"])
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert set(compose["volumes"]) == {"hf-cache", "chroma-data", "api-state"}


def test_cpu_variant_runs_the_embedded_vllm_without_a_gpu():
    cpu = load("compose.cpu.yaml")["services"]
    assert set(cpu) == {"chroma", "api"}
    api = cpu["api"]
    assert api["build"]["target"] == "cpu"
    assert "RAG_LLM_BASE_URL" not in api["environment"]  # unset: the API starts its own CPU vLLM
    assert "deploy" not in api and api["command"][:2] == ["rag", "serve"]
    # Found by running it (make compose-cpu): vLLM's CPU engine needs more /dev/shm than Docker's 64 MiB.
    assert api["shm_size"] == "1gb"
    # Builds install from the package registries the host reaches; the base image is a build argument.
    assert api["build"]["network"] == "host" and api["build"]["args"]["BASE_IMAGE"].endswith(":-python:3.11-slim}")


def test_dockerfile_is_multi_stage_slim_and_not_root():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", dockerfile, re.M)
    assert {name for _, name in stages} >= {"build", "api", "cpu"}
    # The base is a build argument (local stand-ins where no registry can be reached); its default is slim.
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert {image for image, _ in stages} <= {"${BASE_IMAGE}", "build", "runtime"}
    # No remote BuildKit frontend: the legacy builder builds it offline.
    assert not re.search(r"^# syntax=", dockerfile, re.M)
    assert re.search(r"^USER rag$", dockerfile, re.M) and "useradd" in dockerfile
    assert 'CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert "HF_HUB_OFFLINE=1" in dockerfile  # the embedding model is baked in: no download at start


def test_fleet_runs_api_replicas_and_workers_on_shared_postgres_chroma_and_files():
    fleet = load("compose.fleet.yaml")["services"]
    api, worker = fleet["api"], fleet["worker"]
    assert "--no-worker" in api["command"] and worker["command"][:2] == ["rag", "worker"]
    for service in (api, worker):
        env = service["environment"]
        assert env["RAG_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["RAG_DATABASE_URL"]
        assert env["RAG_CHROMA_URL"] == "http://chroma:8000" and env["RAG_FILES_DIR"] == "/files"
        assert "files:/files" in service["volumes"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "replicas" in service["deploy"]
    assert "pg_isready" in " ".join(fleet["postgres"]["healthcheck"]["test"])
    # Generation goes through the router, which knows both vLLM replicas.
    assert api["environment"]["RAG_LLM_BASE_URL"] == "http://llm-router:8000/v1"
    backends = next(a for a in fleet["llm-router"]["command"] if a.startswith("--static-backends="))
    assert backends.endswith("http://vllm-a:8000,http://vllm-b:8000")
    # Requests reach the replicas through the load balancer, whose config streams answers unbuffered.
    assert fleet["lb"]["ports"] and "api" not in {k for k, v in fleet.items() if v.get("ports") and k != "lb"}
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert "proxy_buffering off" in nginx and "http://api:8000" in nginx


def test_env_example_lists_every_setting():
    from rag.settings import flat_fields

    example = (REPO / ".env.example").read_text()
    names = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    expected = {f"RAG_{name.upper()}" for name in flat_fields()}
    assert expected <= names, f"missing from .env.example: {sorted(expected - names)}"
    assert {"VLLM_MODEL", "VLLM_MAX_MODEL_LEN", "VLLM_GPU_MEMORY_UTILIZATION", "HF_TOKEN"} <= names


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)"
)
@pytest.mark.parametrize("name", ["compose.yaml", "compose.cpu.yaml", "compose.fleet.yaml"])
def test_docker_compose_accepts_the_file(name):
    result = subprocess.run(
        ["docker-compose", "-f", name, "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
