"""What the web page stands on, over HTTP: cited PDF pages drawn as PNGs, the collections list, the page and
the API docs served from this host."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests import documents as docs
from tests.helpers import error_reason, upload, wait_for_document

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client_with_documents(make_client):
    client = make_client(page_cache_mb=8)
    uploaded = upload(client, ("almanac.pdf", docs.ALMANAC_PDF), ("bees.md", docs.MARKDOWN)).json()["documents"]
    ids = [d["id"] for d in uploaded]
    for document_id in ids:
        assert wait_for_document(client, document_id)["status"] == "ready"
    client.almanac, client.bees = ids
    return client


def test_a_pdf_page_is_drawn_at_the_asked_width_and_drawn_once(client_with_documents):
    client = client_with_documents
    pages = client.get(f"/v1/documents/{client.almanac}").json()["pages"]
    response = client.get(f"/v1/documents/{client.almanac}/pages/2.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(response.content))
    assert image.width == 1000  # RAG_PAGE_IMAGE_WIDTH
    # A real page, drawn: not one flat colour.
    assert len(image.convert("L").getcolors(256)) > 10
    narrow = client.get(f"/v1/documents/{client.almanac}/pages/{pages}.png", params={"width": 400})
    assert Image.open(io.BytesIO(narrow.content)).width == 400

    pages_images = client.app.state.runtime.page_images
    drawn = pages_images.drawn
    again = client.get(f"/v1/documents/{client.almanac}/pages/2.png")
    assert again.content == response.content and pages_images.drawn == drawn  # from the cache
    etag = again.headers["etag"]
    unchanged = client.get(f"/v1/documents/{client.almanac}/pages/2.png", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and not unchanged.content and pages_images.drawn == drawn


def test_pages_that_cannot_be_drawn_are_refused_with_a_reason(client_with_documents):
    client = client_with_documents
    pages = client.get(f"/v1/documents/{client.almanac}").json()["pages"]
    beyond = client.get(f"/v1/documents/{client.almanac}/pages/{pages + 1}.png")
    assert beyond.status_code == 404 and f"has {pages} pages" in error_reason(beyond)
    not_pdf = client.get(f"/v1/documents/{client.bees}/pages/1.png")
    assert not_pdf.status_code == 404 and "bees.md is not a PDF" in error_reason(not_pdf)
    assert client.get("/v1/documents/no-such-id/pages/1.png").status_code == 404
    too_wide = client.get(f"/v1/documents/{client.almanac}/pages/1.png", params={"width": 3000})
    assert too_wide.status_code == 422 and "RAG_PAGE_IMAGE_MAX_WIDTH" in error_reason(too_wide)
    assert client.get(f"/v1/documents/{client.almanac}/pages/0.png").status_code == 422


def test_a_quote_is_found_on_its_page_as_one_box_per_line(client_with_documents):
    client = client_with_documents
    quote = (
        "The Quillhaven lighthouse was lit for the first time on 14 March 1887 by keeper Odalys Brennick, "
        "who kept it for thirty-one years."
    )
    boxes = client.get(f"/v1/documents/{client.almanac}/pages/2/boxes", params={"text": quote}).json()["boxes"]
    assert len(boxes) == 2  # the sentence runs over two lines of the page
    for box in boxes:
        assert 0 <= box["left"] < box["right"] <= 1 and 0 <= box["top"] < box["bottom"] <= 1
    assert boxes[0]["top"] < boxes[1]["top"] < 0.5  # in reading order, near the top of the page
    # Not on another page; nor a sentence the page does not hold.
    assert client.get(f"/v1/documents/{client.almanac}/pages/1/boxes", params={"text": quote}).json()["boxes"] == []
    elsewhere = client.get(f"/v1/documents/{client.almanac}/pages/2/boxes", params={"text": "a recipe for sourdough"})
    assert elsewhere.json()["boxes"] == []
    not_pdf = client.get(f"/v1/documents/{client.bees}/pages/1/boxes", params={"text": "hives"})
    assert not_pdf.status_code == 404 and "not a PDF" in error_reason(not_pdf)
    assert client.get(f"/v1/documents/{client.almanac}/pages/2/boxes").status_code == 422


def test_the_page_cache_stays_within_its_bound(make_client):
    client = make_client(page_cache_mb=0)  # too small for any page: every request draws again
    document = upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]
    assert wait_for_document(client, document["id"])["status"] == "ready"
    images = client.app.state.runtime.page_images
    for _ in range(2):
        assert client.get(f"/v1/documents/{document['id']}/pages/1.png").status_code == 200
    assert images.drawn == 2 and images.cached_bytes <= 1


def test_page_images_follow_the_api_keys(make_client, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("farm-key: [farm]\n")
    client = make_client(api_keys="admin-key", api_keys_file=keys)
    admin = {"Authorization": "Bearer admin-key"}
    response = client.post(
        "/v1/documents",
        files=[("files", ("almanac.pdf", docs.ALMANAC_PDF))],
        data={"collection": "harbour"},
        headers=admin,
    )
    document_id = response.json()["documents"][0]["id"]  # its pages are drawn from the upload, ready or not
    path = f"/v1/documents/{document_id}/pages/1.png"
    assert client.get(path).status_code == 401
    # A key scoped to another collection learns nothing, not even that the document exists.
    assert client.get(path, headers={"Authorization": "Bearer farm-key"}).status_code == 404
    assert client.get(path, headers=admin).status_code == 200


def test_collections_list_what_the_key_may_use_with_their_document_counts(make_client, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("farm-key: [farm]\n")
    client = make_client(api_keys="admin-key", api_keys_file=keys)
    admin = {"Authorization": "Bearer admin-key"}
    for name, content, collection in [("a.md", docs.MARKDOWN, "farm"), ("b.txt", docs.TEXT, "weather")]:
        client.post("/v1/documents", files=[("files", (name, content))], data={"collection": collection}, headers=admin)
    listed = client.get("/v1/collections", headers=admin).json()["collections"]
    assert listed == [
        {"name": "farm", "documents": 1, "role": "write"},
        {"name": "weather", "documents": 1, "role": "write"},
    ]
    scoped = client.get("/v1/collections", headers={"Authorization": "Bearer farm-key"}).json()["collections"]
    assert scoped == [{"name": "farm", "documents": 1, "role": "write"}]
    assert client.get("/v1/collections").status_code == 401


def test_the_web_page_and_the_api_docs_are_served_from_this_host(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    for path in ["/docs", "/redoc"]:
        html = client.get(path).text
        # Every script, style and icon the page loads is a path on this host.
        loaded = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', html) + re.findall(r"url:\s*'([^']+)'", html)
        assert loaded and all(url.startswith("/") for url in loaded), (path, loaded)
        for url in loaded:
            assert client.get(url).status_code == 200, url
        assert "https://" not in html.replace("https://github.com", "")


def test_the_pages_forbid_other_hosts_and_the_assets_are_revalidated(make_client):
    client = make_client()
    policy = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert "default-src 'self'" in client.get("/docs").headers["content-security-policy"]
    assert "default-src 'self'" in client.get("/redoc").headers["content-security-policy"]
    assert client.get("/ui/app.js").headers["cache-control"] == "no-cache"
    assert client.get("/ui/index.html").status_code == 404  # the page is only at /, with its policy


def test_the_web_page_can_be_turned_off(make_client):
    client = make_client(web_page=False, api_docs=False)
    assert client.get("/").status_code == 404
    assert client.get("/docs").status_code == 404
    assert client.get("/ui/app.js").status_code == 404
