"""`rag ingest` from the shell: folders, progress, duplicates and failures, through the same pipeline."""

from __future__ import annotations

import os
import subprocess

import pytest

from ingest.storage.records import DocumentRecords, Status
from rag.settings import Settings
from tests import documents as docs
from tests.helpers import venv_script

pytestmark = pytest.mark.slow


def run_ingest(data_dir, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "COLUMNS": "120"}
    env.pop("RAG_CHROMA_URL", None)
    return subprocess.run(
        [venv_script("rag"), "ingest", *map(str, args)], env=env, capture_output=True, text=True, timeout=300
    )


def test_ingest_a_folder_reports_progress_and_failures(tmp_path):
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    (folder / "almanac.pdf").write_bytes(docs.ALMANAC_PDF)
    (folder / "nested" / "ferry.docx").write_bytes(docs.DOCX)
    (folder / "nested" / "bees.md").write_bytes(docs.MARKDOWN)
    (folder / "locked.pdf").write_bytes(docs.encrypted_pdf())
    (folder / "photo.gif").write_bytes(docs.GIF)
    (folder / ".hidden.txt").write_bytes(docs.TEXT)
    data_dir = tmp_path / "state"

    result = run_ingest(data_dir, folder, "--collection", "manuals")
    assert result.returncode == 1, result.stderr
    assert "documents" in result.stderr and "chunks" in result.stderr  # the progress bars
    assert "3 of 5 documents ready in collection 'manuals'" in result.stderr
    assert "photo.gif: unsupported file type" in result.stderr
    assert "locked.pdf: the PDF is encrypted" in result.stderr

    records = DocumentRecords(Settings(_env_file=None, data_dir=data_dir).storage.records_path)
    ready, _ = records.list(collection="manuals", status=Status.READY)
    assert sorted(r.filename for r in ready) == ["almanac.pdf", "bees.md", "ferry.docx"]
    records.close()

    again = run_ingest(data_dir, folder / "almanac.pdf", "--collection", "manuals")
    assert again.returncode == 0, again.stderr
    assert "already in 'manuals'" in again.stderr
    assert "1 of 1 documents ready" in again.stderr


def test_ingest_refuses_a_missing_path_and_a_bad_collection(tmp_path):
    missing = run_ingest(tmp_path / "state", tmp_path / "nope.pdf")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "a.txt").write_bytes(docs.TEXT)
    bad = run_ingest(tmp_path / "state", tmp_path / "a.txt", "--collection", "no/slashes")
    assert bad.returncode == 2 and "collection names" in bad.stderr and "Traceback" not in bad.stderr


def test_ingest_with_replace_makes_a_changed_file_the_next_version(tmp_path):
    notice = tmp_path / "notice.txt"
    notice.write_text("The north gate code is 4417. The harbour office opens at eight.")
    data_dir = tmp_path / "state"
    assert run_ingest(data_dir, notice).returncode == 0
    notice.write_text("The north gate code is 5521. The harbour office opens at nine.")
    replaced = run_ingest(data_dir, notice, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "1 of 1 documents ready" in replaced.stderr

    records = DocumentRecords(Settings(_env_file=None, data_dir=data_dir).storage.records_path)
    documents, total = records.list(collection="default")
    records.close()
    assert total == 1 and documents[0].version == 2 and documents[0].source == "notice.txt"
    assert documents[0].bytes == len(notice.read_bytes())
