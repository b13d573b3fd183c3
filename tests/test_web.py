"""The web page in a real browser: Debian's chromium, driven by Selenium through chromium-driver, against the
real app on a real port (real embedding model, real vLLM on the CPU, real PDFs).

Screenshots go to tests/screenshots/ (the README names it). Chrome's performance log lists every request the
page makes: no test ends without checking that none went to another host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from rag.settings import Settings
from tests import documents as docs
from tests.helpers import UNREACHABLE_LLM, LiveServer, wait_until

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LIGHTHOUSE = "In what year was the Quillhaven lighthouse first lit?"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder, llm_server) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("web") / "state"
    live = LiveServer(Settings(_env_file=None, data_dir=state, llm_base_url=llm_server, max_tokens=48), embedder)
    yield live
    live.stop()


class Requests:
    """Every request the page made, from Chrome's performance log (read as it fills), and those the browser
    blocked before they left (the Content-Security-Policy)."""

    def __init__(self, driver: WebDriver):
        self._driver = driver
        self.seen: list[dict] = []
        self._urls: dict[str, str] = {}
        self.blocked: list[str] = []
        driver.get_log("performance")  # what earlier tests left

    def read(self) -> list[dict]:
        for entry in self._driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                self.seen.append(params["request"])
                self._urls[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
                self.blocked.append(self._urls.get(params["requestId"], "?"))
        return self.seen

    def assert_all_local(self, origin: str, *, may_block: bool = False) -> None:
        """No request went to another host; unless ``may_block``, none was even tried."""
        host = urlsplit(origin).netloc
        urls = [urlsplit(r["url"]) for r in self.read()]
        outside = [u.geturl() for u in urls if u.scheme not in ("data", "blob") and u.netloc != host]
        assert self.seen, "no requests were logged"
        assert set(outside) <= set(self.blocked), f"requests to another host: {outside}"
        if not may_block:
            assert not self.blocked, f"requests the browser had to block: {self.blocked}"


def wait(driver: WebDriver, condition, timeout: float = 30, what: str = ""):
    # The document list updates while the test reads it: an element gone stale is read again.
    waiter = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    return waiter.until(lambda d: condition(d), what)


def shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def upload_through_the_page(driver: WebDriver, *paths: Path) -> None:
    chooser = driver.find_element(By.ID, "file-input")
    chooser.send_keys("\n".join(str(p) for p in paths))


def document_row(driver: WebDriver, filename: str) -> WebElement | None:
    rows = driver.find_elements(By.XPATH, f"//ul[@id='documents']/li[.//span[@class='name' and text()='{filename}']]")
    return rows[0] if rows else None


def wait_until_ready(driver: WebDriver, filename: str, timeout: float = 180) -> WebElement:
    def ready(d):
        row = document_row(d, filename)
        if row is not None and row.get_attribute("data-status") == "failed":
            raise AssertionError(f"{filename} failed: {row.text}")
        return row if row is not None and row.get_attribute("data-status") == "ready" else None

    return wait(driver, ready, timeout, f"{filename} to be ready")


def ask(driver: WebDriver, question: str, timeout: float = 180) -> WebElement:
    """Type the question and press Enter, as a person would; wait for the answer to finish."""
    before = len(driver.find_elements(By.CSS_SELECTOR, ".answer"))
    box = driver.find_element(By.ID, "question")
    box.send_keys(question, Keys.ENTER)

    def finished(d):
        answers = d.find_elements(By.CSS_SELECTOR, ".answer")
        if len(answers) <= before:
            return None
        latest = answers[-1]
        return latest if latest.get_attribute("data-state") in ("done", "failed") else None

    answer = wait(driver, finished, timeout, "the answer")
    assert answer.get_attribute("data-state") == "done", answer.text
    return answer


def image_loaded(driver: WebDriver) -> bool:
    return driver.execute_script(
        "const i = document.getElementById('page-image'); return i.complete && i.naturalWidth > 0;"
    )


def browser_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_upload_ask_and_see_the_cited_page(browser, served, tmp_path):
    requests = Requests(browser)
    pdf = tmp_path / "harbour-almanac.pdf"
    pdf.write_bytes(docs.ALMANAC_PDF)
    notes = tmp_path / "bees.md"
    notes.write_bytes(docs.MARKDOWN)
    browser.get(served.url + "/")
    wait(browser, lambda d: d.find_element(By.ID, "documents-summary").text.startswith("0 documents"), what="the list")

    upload_through_the_page(browser, pdf, notes)
    wait(browser, lambda d: document_row(d, "harbour-almanac.pdf"), what="the upload to be listed")
    shot(browser, "01-uploading")
    wait_until_ready(browser, "harbour-almanac.pdf")
    wait_until_ready(browser, "bees.md")
    assert browser.find_element(By.ID, "documents-summary").text.startswith("2 documents")
    shot(browser, "02-ready")

    answer = ask(browser, LIGHTHOUSE)
    assert "1887" in answer.find_element(By.CSS_SELECTOR, ".answer-text").text
    chips = answer.find_elements(By.CSS_SELECTOR, ".chip")
    assert chips and "harbour-almanac.pdf, p. 2" in chips[0].text  # best first
    shot(browser, "03-answer")

    # Open the best source by keyboard: its passage with the quote highlighted, and the page itself.
    browser.execute_script("arguments[0].focus()", chips[0])
    browser.switch_to.active_element.send_keys(Keys.ENTER)

    # The passage in its surrounding text (the neighbouring chunks, dimmed), the quote marked inside it.
    def quote_in_place(d):
        in_context = d.find_elements(By.CSS_SELECTOR, "#viewer-text .context")
        return in_context and d.find_element(By.CSS_SELECTOR, "#viewer-text .own mark").text

    quote = wait(browser, quote_in_place, what="the quote in its surroundings")
    assert "1887" in quote and "Quillhaven lighthouse" in quote
    wait(browser, image_loaded, what="the page image")
    image = browser.find_element(By.ID, "page-image")
    assert image.get_attribute("data-page") == "2" and "Page 2 of" in browser.find_element(By.ID, "page-label").text
    # The quote is boxed on the page image too: inside the image, in its upper part where the text is.
    boxes = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#page-frame .page-box"), what="the boxes")
    frame = browser.find_element(By.ID, "page-frame").rect
    rects = [box.rect for box in boxes]
    assert all(frame["y"] <= r["y"] < frame["y"] + frame["height"] / 2 for r in rects)
    assert max(r["width"] for r in rects) > frame["width"] / 4
    shot(browser, "04-cited-passage")
    browser.execute_script("document.getElementById('page-image').scrollIntoView({block: 'start'})")
    shot(browser, "05-cited-page")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser, lambda d: not d.find_element(By.ID, "viewer").is_displayed(), what="the viewer to close")
    assert browser.switch_to.active_element == chips[0]  # focus goes back where it was

    # A follow-up is a conversation: the page sends the earlier turn with it.
    ask(browser, "Who was its first keeper?")
    queries = [r for r in requests.read() if r["url"].endswith("/v1/query") and r.get("postData")]
    follow_up = json.loads(queries[-1]["postData"])
    assert follow_up["history"][0] == {"role": "user", "content": LIGHTHOUSE}
    assert follow_up["history"][1]["role"] == "assistant" and "1887" in follow_up["history"][1]["content"]

    # A new conversation, and a question nothing answers: the refusal, with the closest passages.
    browser.find_element(By.ID, "new-conversation").click()
    assert not browser.find_elements(By.CSS_SELECTOR, ".answer")
    refusal = ask(browser, "What is a good recipe for sourdough bread?")
    assert refusal.get_attribute("data-abstained") == "true"
    assert "Not answered" in refusal.find_element(By.CSS_SELECTOR, ".abstain-reason").text
    closest = refusal.find_elements(By.CSS_SELECTOR, ".chip")
    assert closest
    shot(browser, "06-refusal")
    closest[0].click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#viewer-text .own"), what="the closest passage")
    browser.find_element(By.ID, "viewer-close").click()

    # A Markdown source shows its passage in its surrounding text.
    answer = ask(browser, "How many hives does the Hollowmere apiary keep?")
    bees = [c for c in answer.find_elements(By.CSS_SELECTOR, ".chip") if "bees.md" in c.text]
    assert bees
    bees[0].click()
    own = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#viewer-text .own"), what="the passage")[0]
    assert "Hollowmere" in own.text
    assert not browser.find_element(By.ID, "viewer-page").is_displayed()  # no page image for Markdown
    shot(browser, "07-markdown-passage")
    browser.find_element(By.ID, "viewer-close").click()

    # Filter, open and delete documents.
    browser.find_element(By.ID, "filter-name").send_keys("bees")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#documents li")) == 1, what="the filter")
    row = document_row(browser, "bees.md")
    row.find_element(By.CSS_SELECTOR, "button.open").click()
    wait(browser, lambda d: "Hollowmere" in d.find_element(By.ID, "viewer-text").text, what="the document")
    browser.find_element(By.ID, "viewer-close").click()
    row.find_element(By.CSS_SELECTOR, "button.delete").click()
    browser.switch_to.alert.accept()
    wait(browser, lambda d: document_row(d, "bees.md") is None, what="the document to go")
    assert served.app.state.runtime.records.list(collection="default")[1] == 1

    assert not browser.find_element(By.ID, "error-banner").is_displayed()  # nothing went wrong on the way
    requests.assert_all_local(served.url)
    assert not browser_errors(browser)


def test_a_failed_upload_shows_its_reason(browser, served, tmp_path):
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"this is not a PDF at all")
    browser.get(served.url + "/")
    upload_through_the_page(browser, bad)
    banner = wait(browser, lambda d: d.find_element(By.ID, "error-banner").is_displayed(), what="the error")
    text = browser.find_element(By.ID, "error-text").text
    assert banner and "HTTP 4" in text and "notes.pdf" in text
    shot(browser, "08-bad-upload")

    # Accepted, but it fails while it is read: the list says so, with the reason.
    scanned = tmp_path / "scanned.pdf"
    scanned.write_bytes(docs.NO_TEXT_PDF)
    upload_through_the_page(browser, scanned)

    def failed(d):
        row = document_row(d, "scanned.pdf")
        return row if row is not None and row.get_attribute("data-status") == "failed" else None

    row = wait(browser, failed, 120, "the scanned PDF to fail")
    assert "no extractable text" in row.find_element(By.CSS_SELECTOR, ".reason").text
    shot(browser, "08-failed-document")


def test_on_a_phone_nothing_spills_sideways(browser, served):
    browser.set_window_size(390, 844)
    try:
        browser.get(served.url + "/")
        wait(browser, lambda d: "document" in d.find_element(By.ID, "documents-summary").text, what="the list")
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        shot(browser, "09-phone")
    finally:
        browser.set_window_size(1366, 900)


@pytest.fixture(scope="module")
def served_with_keys(tmp_path_factory, embedder) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("web-keys")
    keys = state / "keys.yaml"
    keys.write_text("farm-key: [farm]\n")
    settings = Settings(
        _env_file=None,
        data_dir=state / "state",
        llm_base_url="http://127.0.0.1:9/v1",
        api_keys="admin-key",
        api_keys_file=keys,
    )
    live = LiveServer(settings, embedder, need_llm=False)
    yield live
    live.stop()


def test_with_keys_on_the_page_asks_for_one_and_sends_it(browser, served_with_keys, tmp_path):
    requests = Requests(browser)
    browser.get(served_with_keys.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "key-dialog").get_attribute("open") is not None, what="the ask")
    shot(browser, "10-key-asked")

    browser.find_element(By.ID, "key-input").send_keys("wrong-key", Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "key-error").text, what="the 401")
    assert "401" in error and "invalid API key" in error
    assert browser.find_element(By.ID, "key-dialog").get_attribute("open") is not None

    # A key for another collection: the 403 is shown plainly.
    browser.find_element(By.ID, "key-input").send_keys("farm-key", Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "error-banner").is_displayed(), what="the 403")
    text = browser.find_element(By.ID, "error-text").text
    assert "HTTP 403" in text and "may not use collection 'default'" in text
    shot(browser, "11-key-forbidden")

    browser.find_element(By.ID, "key-button").click()
    browser.find_element(By.ID, "key-input").send_keys("admin-key", Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "documents-summary").text.startswith("0 documents"), what="list")
    assert browser.execute_script("return sessionStorage.getItem('rag-api-key')") == "admin-key"
    assert browser.execute_script("return localStorage.length") == 0  # the key stays in this tab's session

    # Upload and open a page with the key: the image is fetched with it too.
    pdf = tmp_path / "harbour-almanac.pdf"
    pdf.write_bytes(docs.ALMANAC_PDF)
    upload_through_the_page(browser, pdf)
    row = wait_until_ready(browser, "harbour-almanac.pdf")
    row.find_element(By.CSS_SELECTOR, "button.open").click()
    wait(browser, image_loaded, what="the page image")
    shot(browser, "12-key-page")
    sent = [r for r in requests.read() if "/v1/" in r["url"]]
    after = sent[next(i for i, r in enumerate(sent) if r["headers"].get("Authorization") == "Bearer admin-key") :]
    assert all(r["headers"].get("Authorization") == "Bearer admin-key" for r in after)
    assert any("/pages/1.png" in r["url"] for r in after)
    requests.assert_all_local(served_with_keys.url)


@pytest.fixture(scope="module")
def served_with_roles(tmp_path_factory, embedder) -> Iterator[LiveServer]:
    """One collection, "handbook", holding a ready document; a key that may only read it (and may write to
    "drafts", so that the page has another collection to switch to), and a key that may write to it."""
    state = tmp_path_factory.mktemp("web-roles")
    keys = state / "keys.yaml"
    keys.write_text("reader-key: {handbook: read, drafts: write}\nwriter-key: {handbook: write}\n")
    settings = Settings(_env_file=None, data_dir=state / "state", llm_base_url=UNREACHABLE_LLM, api_keys_file=keys)
    live = LiveServer(settings, embedder, need_llm=False)
    writer = {"Authorization": "Bearer writer-key"}
    sent = httpx.post(
        f"{live.url}/v1/documents",
        headers=writer,
        files=[("files", ("bees.md", docs.MARKDOWN))],
        data={"collection": "handbook"},
        timeout=60,
    )
    assert sent.status_code == 202, sent.text
    document = f"{live.url}/v1/documents/{sent.json()['documents'][0]['id']}"
    wait_until(lambda: httpx.get(document, headers=writer).json()["status"] in ("ready", "failed"), 120, "bees.md")
    assert httpx.get(document, headers=writer).json()["status"] == "ready"
    yield live
    live.stop()


def use_key(driver: WebDriver, key: str) -> None:
    """Enter the key in the page's key dialog, as a person would (opening the dialog if it is not open)."""
    if driver.find_element(By.ID, "key-dialog").get_attribute("open") is None:
        driver.find_element(By.ID, "key-button").click()
    driver.find_element(By.ID, "key-input").send_keys(key, Keys.ENTER)


def test_a_read_key_sees_no_upload_or_delete(browser, served_with_roles):
    requests = Requests(browser)
    browser.get(served_with_roles.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "key-dialog").get_attribute("open") is not None, what="the ask")

    def shown(element_id: str) -> bool:
        return browser.find_element(By.ID, element_id).is_displayed()

    def delete_shown() -> bool:
        return document_row(browser, "bees.md").find_element(By.CSS_SELECTOR, "button.delete").is_displayed()

    # The read key: the document can be opened, not deleted, and nothing can be uploaded; a note says why.
    use_key(browser, "reader-key")
    row = wait_until_ready(browser, "bees.md")
    wait(browser, lambda d: d.find_element(By.ID, "access-note").is_displayed(), what="the read-only note")
    assert (
        "may read this collection, not upload to it or delete from it"
        in browser.find_element(By.ID, "access-note").text
    )
    assert row.find_element(By.CSS_SELECTOR, "button.open").is_displayed()
    assert not delete_shown()
    assert not shown("dropzone") and not shown("choose-files")
    shot(browser, "14-read-key")

    # Its role is the selected collection's: where it may write ("drafts", new), the upload area is back.
    assert shown("new-collection")
    browser.find_element(By.ID, "new-collection-name").send_keys("drafts", Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "choose-files").is_displayed(), what="the upload area")
    assert not shown("access-note")
    Select(browser.find_element(By.ID, "collection")).select_by_value("handbook")
    wait_until_ready(browser, "bees.md")
    assert shown("access-note") and not shown("dropzone") and not delete_shown()

    # The write key on the same collection: upload and delete are offered, the note is gone.
    use_key(browser, "writer-key")
    wait(browser, lambda d: d.find_element(By.ID, "choose-files").is_displayed(), what="the upload area")
    wait_until_ready(browser, "bees.md")
    assert delete_shown()
    assert not shown("access-note")
    shot(browser, "15-write-key")
    assert not shown("error-banner")
    requests.assert_all_local(served_with_roles.url)


@pytest.mark.parametrize("path, rendered", [("/docs", ".swagger-ui .info .title"), ("/redoc", ".api-info h1")])
def test_the_api_docs_work_offline(browser, served, path, rendered):
    requests = Requests(browser)
    browser.get(served.url + path)
    title = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, rendered), what=f"{path} to render")[0]
    assert "rag" in title.text
    shot(browser, f"13-api-docs{path.replace('/', '-')}")
    # ReDoc's menu asks cdn.redoc.ly for a logo: the page's policy makes the browser refuse it.
    requests.assert_all_local(served.url, may_block=True)
