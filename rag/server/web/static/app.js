// The web page: upload documents and watch them, ask questions, open what an answer cites.
// Plain JavaScript over the service's own HTTP API; nothing here talks to another host.
"use strict";

const KEY_STORAGE = "rag-api-key";
const COLLECTION_STORAGE = "rag-collection";
const POLL_BUSY_MS = 1000;   // while a document is queued or processing
const POLL_IDLE_MS = 15000;  // otherwise: documents another client uploads show up too
const HISTORY_MESSAGES = 8;  // earlier turns sent with a follow-up question
const CONTEXT_CHARS = 400;   // of the text around a cited passage

const $ = (id) => document.getElementById(id);

const state = {
  collection: sessionStorage.getItem(COLLECTION_STORAGE) || "default",
  collections: [],
  access: null,      // the key's roles (GET /v1/access); null until known
  documents: [],
  total: 0,          // documents in the collection (the list holds at most 1000 of them)
  history: [],       // [{role, content}] of finished turns, oldest first
  pollTimer: null,
  listGeneration: 0,
  asking: null,      // the AbortController of the question being answered
  conversation: 0,   // bumped by "New conversation": a late answer does not join the new one
  viewer: null,      // {token, documentId, page, pages, quote, returnFocus}
  viewerToken: 0,
  pageImageUrl: null,
};

// --- talking to the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function authHeaders(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// The reason an error response gives, in any of the service's shapes (its own, validation, OpenAI's).
async function reasonOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
  const detail = body && (body.detail ?? (body.error && body.error.message));
  if (Array.isArray(detail)) {
    return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(body);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!response.ok) {
    throw new ApiError(response.status, await reasonOf(response));
  }
  return response;
}

// A failed call, shown plainly. 401 asks for a key; everything else goes to the banner.
function showFailure(error, what) {
  if (error instanceof ApiError && error.status === 401) {
    askForKey(error.message);
    return;
  }
  const prefix = error instanceof ApiError ? `${what} failed (HTTP ${error.status}): ` : `${what} failed: `;
  showBanner(prefix + error.message);
}

function showBanner(text) {
  $("error-text").textContent = text;
  $("error-banner").hidden = false;
}

function hideBanner() {
  $("error-banner").hidden = true;
}

// --- API key -------------------------------------------------------------------------------------------

function askForKey(reason) {
  const dialog = $("key-dialog");
  $("key-error").textContent = apiKey() && reason ? `HTTP 401: ${reason}` : "";
  $("key-button").hidden = false;
  if (!dialog.open) {
    dialog.showModal();
  }
  $("key-input").focus();
}

function useKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) {
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  state.access = null; // the last key's roles are not this one's
  renderAccess();
  $("key-dialog").close();
  hideBanner();
  start();
}

// --- what the key may do -------------------------------------------------------------------------------

// The server refuses an upload or a delete a key's role does not allow either way: the page only spares a
// read key controls that could only fail.
const READ_ONLY_NOTE = "This key may read this collection, not upload to it or delete from it.";
const NO_ACCESS_NOTE = "This key may not use this collection.";
// A server without GET /v1/access (older than roles): everything shown, as before, and it decides.
const ACCESS_UNKNOWN = { collections: {}, every_collection: "write" };

async function loadAccess() {
  try {
    state.access = await (await api("/v1/access")).json();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error; // start() asks for a key
    state.access = ACCESS_UNKNOWN;
  }
}

// "read", "write", or null (no access); null too while the roles are not known yet.
function roleOn(collection) {
  const access = state.access;
  if (!access) return null;
  const named = access.collections || {};
  // hasOwn: a collection may be called "constructor" or "toString".
  return Object.hasOwn(named, collection) ? named[collection] : (access.every_collection ?? null);
}

function mayWrite() {
  return roleOn(state.collection) === "write";
}

// A new collection is made by uploading to it: worth offering while the key may write to some collection.
function mayCreate() {
  const access = state.access;
  if (!access) return false;
  return access.every_collection === "write" || Object.values(access.collections || {}).includes("write");
}

// Show or hide what needs the write role, for the selected collection; again whenever the key or the
// collection changes. Until the roles are known, neither the upload area nor the note.
function renderAccess() {
  const role = roleOn(state.collection);
  const writable = role === "write";
  $("dropzone").hidden = !writable;
  $("new-collection").hidden = !mayCreate();
  const note = $("access-note");
  note.hidden = state.access === null || writable;
  note.textContent = role === "read" ? READ_ONLY_NOTE : role === null ? NO_ACCESS_NOTE : "";
  // Every row made so far, not only those on show: a row the filter hides comes back as it was built.
  for (const { element } of renderedRows.values()) {
    element.querySelector("button.delete").hidden = !writable;
  }
}

// --- collections ---------------------------------------------------------------------------------------

async function loadCollections() {
  const body = await (await api("/v1/collections")).json();
  state.collections = body.collections.map((c) => c.name);
  renderCollections();
}

function renderCollections() {
  const names = new Set(state.collections);
  names.add(state.collection);
  const select = $("collection");
  select.replaceChildren(
    ...[...names].sort().map((name) => {
      const option = new Option(name, name, false, name === state.collection);
      return option;
    }),
  );
}

function chooseCollection(name) {
  if (name === state.collection) {
    return;
  }
  state.collection = name;
  sessionStorage.setItem(COLLECTION_STORAGE, name);
  renderCollections();
  renderAccess();
  newConversation({ focus: false }); // focus stays on the select: arrow keys there fire "change"
  refreshDocuments();
}

function createCollection(event) {
  event.preventDefault();
  const input = $("new-collection-name");
  if (!input.reportValidity()) {
    return;
  }
  const name = input.value.trim();
  input.value = "";
  chooseCollection(name);
  $("upload-status").textContent = `Collection "${name}" is created with its first upload.`;
}

// --- documents -----------------------------------------------------------------------------------------

async function refreshDocuments() {
  clearTimeout(state.pollTimer);
  const generation = ++state.listGeneration; // a newer call (another collection, an upload) supersedes this
  let busy = false;
  try {
    const query = new URLSearchParams({ collection: state.collection, limit: "1000" });
    const body = await (await api(`/v1/documents?${query}`)).json();
    if (generation !== state.listGeneration) return;
    state.documents = body.documents;
    state.total = body.total;
    busy = body.documents.some((d) => d.status === "queued" || d.status === "processing");
    renderDocuments();
  } catch (error) {
    if (generation !== state.listGeneration) return;
    showFailure(error, "Listing the documents");
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      return; // no polling until the key is fixed
    }
  }
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(refreshDocuments, busy ? POLL_BUSY_MS : POLL_IDLE_MS);
}

function describeStatus(doc) {
  switch (doc.status) {
    case "queued":
      return "queued";
    case "processing":
      if (doc.progress < 0.1 && doc.pages) {
        return `parsing: page ${doc.pages_parsed} of ${doc.pages}`;
      }
      return doc.progress < 0.1 ? "parsing" : `embedding: ${Math.round(doc.progress * 100)}%`;
    case "ready":
      return "ready";
    case "failed":
      return "failed";
    default:
      return doc.status;
  }
}

function renderDocuments() {
  const total = state.total;
  const nameFilter = $("filter-name").value.trim().toLowerCase();
  const statusFilter = $("filter-status").value;
  const shown = state.documents.filter(
    (d) => (!nameFilter || d.filename.toLowerCase().includes(nameFilter)) && (!statusFilter || d.status === statusFilter),
  );
  const ready = state.documents.filter((d) => d.status === "ready").length;
  const summary =
    `${total} document${total === 1 ? "" : "s"} in "${state.collection}", ${ready} ready` +
    (shown.length !== state.documents.length ? `; ${shown.length} shown` : "");
  if ($("documents-summary").textContent !== summary) $("documents-summary").textContent = summary;
  placeRows($("documents"), shown.map(documentRow));
}

// A row is rebuilt only when its document changed, and rows already in place are not moved: a poll
// never takes keyboard focus away from an unchanged row's buttons.
const renderedRows = new Map(); // document id -> {signature, element}

function documentRow(doc) {
  const signature = JSON.stringify(
    [doc.filename, doc.status, doc.progress, doc.pages_parsed, doc.pages, doc.chunks, doc.error],
  );
  const known = renderedRows.get(doc.id);
  if (known && known.signature === signature) {
    return known.element;
  }
  const element = documentItem(doc);
  renderedRows.set(doc.id, { signature, element });
  return element;
}

function placeRows(list, rows) {
  rows.forEach((row, index) => {
    if (list.children[index] !== row) {
      list.insertBefore(row, list.children[index] || null);
    }
  });
  while (list.children.length > rows.length) {
    list.lastElementChild.remove();
  }
  const wanted = new Set(state.documents.map((d) => d.id));
  for (const id of renderedRows.keys()) {
    if (!wanted.has(id)) renderedRows.delete(id);
  }
}

function documentItem(doc) {
  const item = document.createElement("li");
  item.dataset.id = doc.id;
  item.dataset.status = doc.status;

  const head = document.createElement("div");
  head.className = "row";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = doc.filename;
  const status = document.createElement("span");
  status.className = `status ${doc.status}`;
  status.textContent = describeStatus(doc);
  head.append(name, status);

  const details = document.createElement("div");
  details.className = "row muted";
  const facts = [];
  if (doc.pages) facts.push(`${doc.pages} page${doc.pages === 1 ? "" : "s"}`);
  if (doc.chunks) facts.push(`${doc.chunks} chunk${doc.chunks === 1 ? "" : "s"}`);
  facts.push(formatBytes(doc.bytes));
  const factText = document.createElement("span");
  factText.textContent = facts.join(" · ");
  const actions = document.createElement("span");
  actions.className = "actions";
  const open = button("Open", () => openDocument(doc), `Open ${doc.filename}`);
  open.className = "open";
  const remove = button("Delete", () => deleteDocument(doc), `Delete ${doc.filename}`);
  remove.className = "delete";
  remove.hidden = !mayWrite();
  actions.append(open, remove);
  details.append(factText, actions);
  item.append(head);

  if (doc.status === "queued" || doc.status === "processing") {
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = doc.progress;
    bar.setAttribute("aria-label", `${doc.filename}: ${describeStatus(doc)}`);
    item.append(bar);
  }
  if (doc.status === "failed" && doc.error) {
    const reason = document.createElement("p");
    reason.className = "error reason";
    reason.textContent = doc.error;
    item.append(reason);
  }
  item.append(details);
  return item;
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function button(label, onClick, ariaLabel) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  if (ariaLabel) element.setAttribute("aria-label", ariaLabel);
  element.addEventListener("click", onClick);
  return element;
}

async function upload(files) {
  if (!files.length) {
    return;
  }
  const form = new FormData();
  for (const file of files) {
    form.append("files", file, file.name);
  }
  const collection = state.collection; // the one the files go to, whatever is picked while they upload
  form.append("collection", collection);
  const status = $("upload-status");
  status.textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`;
  try {
    const body = await (await api("/v1/documents", { method: "POST", body: form })).json();
    const duplicates = body.documents.filter((d) => d.duplicate).length;
    status.textContent =
      `Uploaded ${body.documents.length} file${body.documents.length === 1 ? "" : "s"}` +
      (duplicates ? ` (${duplicates} already there: kept once)` : "") +
      ".";
    hideBanner();
    if (!state.collections.includes(collection)) {
      state.collections.push(collection);
      renderCollections();
    }
  } catch (error) {
    status.textContent = "";
    showFailure(error, "The upload");
  }
  $("file-input").value = "";
  refreshDocuments();
}

async function deleteDocument(doc) {
  if (!confirm(`Delete ${doc.filename} and everything stored from it?`)) {
    return;
  }
  try {
    await api(`/v1/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
  } catch (error) {
    showFailure(error, "Deleting the document");
  }
  if (state.viewer && state.viewer.documentId === doc.id) {
    closeViewer();
  }
  refreshDocuments();
}

function wireDropzone() {
  const zone = $("dropzone");
  const input = $("file-input");
  $("choose-files").addEventListener("click", () => input.click());
  input.addEventListener("change", () => upload([...input.files]));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    upload([...event.dataTransfer.files]);
  });
  // A file dropped outside the zone would otherwise be opened by the browser, leaving the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// --- asking --------------------------------------------------------------------------------------------

function newConversation({ focus = true } = {}) {
  if (state.asking) state.asking.abort();
  state.conversation += 1;
  state.history = [];
  $("turns").replaceChildren();
  if (focus) $("question").focus();
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.asking) {
    return;
  }
  const controller = new AbortController();
  state.asking = controller;
  $("ask-button").disabled = true;
  $("question").value = "";
  const turn = renderTurn(question);
  $("turns").setAttribute("aria-busy", "true"); // announced once finished, not at every streamed word
  const conversation = state.conversation;
  try {
    await streamAnswer(question, turn, controller.signal, conversation);
  } catch (error) {
    if (!controller.signal.aborted) fail(turn, `the answer broke off (${error.message})`);
  } finally {
    $("turns").removeAttribute("aria-busy");
    if (state.asking === controller) state.asking = null;
    $("ask-button").disabled = false;
    // Back to the question box only from the form: not when the person has moved on (to a source, say).
    if (!document.activeElement || document.activeElement === document.body || $("ask").contains(document.activeElement)) {
      $("question").focus();
    }
  }
}

function renderTurn(question) {
  const item = document.createElement("li");
  item.className = "turn";
  const asked = document.createElement("p");
  asked.className = "question-text";
  asked.textContent = question;
  const answer = document.createElement("div");
  answer.className = "answer";
  answer.dataset.state = "waiting";
  const text = document.createElement("div");
  text.className = "answer-text";
  const chips = document.createElement("div");
  chips.className = "chips";
  answer.append(text, chips);
  item.append(asked, answer);
  $("turns").append(item);
  item.scrollIntoView({ block: "end" });
  return { item, answer, text, chips, citations: [], raw: "" };
}

async function streamAnswer(question, turn, signal, conversation) {
  const body = {
    question,
    collection: state.collection,
    stream: true,
    history: state.history.slice(-HISTORY_MESSAGES),
  };
  let response;
  try {
    response = await api("/v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (signal.aborted) return;
    fail(turn, error instanceof ApiError ? `HTTP ${error.status}: ${error.message}` : error.message);
    if (error instanceof ApiError && error.status === 401) askForKey(error.message);
    return;
  }
  turn.answer.dataset.state = "streaming";
  let finished = false;
  for await (const [name, data] of serverSentEvents(response)) {
    if (name === "citations") {
      onCitations(turn, data);
    } else if (name === "delta") {
      turn.raw += data.text;
      turn.text.textContent = turn.raw;
    } else if (name === "done") {
      onDone(turn, data);
      finished = true;
    } else if (name === "error") {
      fail(turn, data.detail);
      return;
    }
  }
  if (!finished) {
    fail(turn, "the answer stopped before it was finished");
    return;
  }
  if (conversation === state.conversation) {
    state.history.push({ role: "user", content: question }, { role: "assistant", content: turn.raw });
  }
}

// Server-Sent Events from a fetch response (EventSource cannot POST, nor send a key).
async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    yield* parseEvents();
  } finally {
    reader.cancel().catch(() => {});
  }

  async function* parseEvents() {
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + decoder.decode(value, { stream: true })).replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield [name, JSON.parse(data.join("\n"))];
    }
  }
  }
}

function onCitations(turn, data) {
  turn.citations = data.citations;
  if (data.abstained) {
    turn.answer.classList.add("abstained");
    turn.answer.dataset.abstained = "true";
    const note = document.createElement("p");
    note.className = "note abstain-reason";
    note.textContent = data.abstain_reason ? `Not answered: ${data.abstain_reason}` : "Not answered.";
    turn.answer.insertBefore(note, turn.chips);
    renderChips(turn, data.closest, "The closest passages (not close enough to answer from):");
    return;
  }
  renderChips(turn, data.citations, "Sources:");
}

function onDone(turn, data) {
  turn.answer.dataset.state = "done";
  if (data.abstained) {
    return;
  }
  turn.citations = data.citations; // ranked best first (the quote's match with the question, then support), with quotes
  renderAnswerText(turn, data.grounding || []);
  renderChips(turn, data.citations, "Sources, best first:");
  if (data.finish_reason === "length") {
    addNote(turn, "cut", "The answer was cut off at its length limit.");
  }
  const unsupported = (data.grounding || []).filter((g) => !g.supported).length;
  if (unsupported) {
    addNote(
      turn,
      "unsupported-note",
      `${unsupported} sentence${unsupported === 1 ? "" : "s"} (underlined) no source supports: check before relying on it.`,
    );
  }
}

function addNote(turn, kind, text) {
  const note = document.createElement("p");
  note.className = `note ${kind}`;
  note.textContent = text;
  turn.answer.insertBefore(note, turn.chips);
}

function fail(turn, reason) {
  turn.answer.dataset.state = "failed";
  const failure = document.createElement("p");
  failure.className = "failure";
  failure.textContent = `No answer: ${reason}`;
  turn.answer.insertBefore(failure, turn.chips);
}

// The answer's text, with each [n] marker a button that opens source n, and unsupported sentences marked.
function renderAnswerText(turn, grounding) {
  const raw = turn.raw;
  const byNumber = new Map(turn.citations.map((c) => [c.n, c]));
  const unsupported = grounding.filter((g) => !g.supported).sort((a, b) => a.start - b.start);
  const nodes = [];
  let cursor = 0;
  const pushText = (from, to) => {
    // Split the plain text at the unsupported sentences' edges.
    let at = from;
    for (const sentence of unsupported) {
      const start = Math.max(sentence.start, at);
      const end = Math.min(sentence.end, to);
      if (start >= end) continue;
      if (start > at) nodes.push(document.createTextNode(raw.slice(at, start)));
      const span = document.createElement("span");
      span.className = "unsupported";
      span.title = "No source supports this sentence";
      span.textContent = raw.slice(start, end);
      nodes.push(span);
      at = end;
    }
    if (at < to) nodes.push(document.createTextNode(raw.slice(at, to)));
  };
  for (const match of raw.matchAll(/\[(\d+(?:\s*[,;]\s*\d+)*)\]/g)) {
    pushText(cursor, match.index);
    const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
    if (!numbers.every((n) => byNumber.has(n))) {
      nodes.push(document.createTextNode(match[0])); // a number no source has: left as the model wrote it
      cursor = match.index + match[0].length;
      continue;
    }
    numbers.forEach((n) => {
      const citation = byNumber.get(n);
      const marker = button(String(n), (event) => openCitation(citation, event.currentTarget), `Open source ${n}`);
      marker.className = "marker";
      nodes.push(marker);
    });
    cursor = match.index + match[0].length;
  }
  pushText(cursor, raw.length);
  turn.text.replaceChildren(...nodes);
}

function renderChips(turn, citations, label) {
  const caption = document.createElement("span");
  caption.className = "chips-label";
  caption.textContent = citations.length ? label : "";
  const chips = citations.map((citation) => {
    const chip = button("", (event) => openCitation(citation, event.currentTarget));
    chip.className = `chip${citation.cited ? " cited" : ""}`;
    chip.dataset.n = citation.n;
    chip.dataset.documentId = citation.document_id;
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = citation.n;
    const where = document.createElement("span");
    where.className = "where";
    where.textContent = citation.page ? `${citation.filename}, p. ${citation.page}` : citation.filename;
    chip.append(n, where);
    chip.setAttribute(
      "aria-label",
      `Source ${citation.n}: ${where.textContent}${citation.cited ? " (cited)" : ""}. Open the passage.`,
    );
    return chip;
  });
  turn.chips.replaceChildren(caption, ...chips);
}

// --- the viewer: a cited passage, its page, or a whole document ----------------------------------------

// Every await in the viewer checks it is still showing what it was opened for (it may have been closed, or
// reopened on another source, meanwhile).
function current(token) {
  return state.viewer !== null && state.viewer.token === token;
}

async function openCitation(citation, opener) {
  const token = showViewer(opener, `[${citation.n}] ${citation.filename}`);
  const facts = [];
  if (citation.page) facts.push(`page ${citation.page}`);
  facts.push(`retrieval score ${citation.score.toFixed(2)}`);
  if (citation.support != null) facts.push(`support ${citation.support.toFixed(2)}`);
  $("viewer-meta").textContent = facts.join(" · ");
  const passage = $("viewer-text");
  passage.replaceChildren(highlighted(flowing(citation.text), quoteInChunk(citation)));
  try {
    const doc = await (await api(`/v1/documents/${encodeURIComponent(citation.document_id)}`)).json();
    if (!current(token)) return;
    if (doc.content_type === "application/pdf" && citation.page) {
      state.viewer.quote = citation.quote ? { page: citation.page, text: citation.quote.text } : null;
      showPage(doc.id, citation.page, doc.pages);
    }
    if (citation.chunk_index != null) {
      await showSurroundings(citation, token);
    } else if (!citation.text) {
      await showOpening(doc.id, token); // a whole document was the source: show how it begins
    }
  } catch (error) {
    if (current(token)) showFailure(error, "Opening the source");
  }
}

// Where the quote lies in the chunk's own text (its offsets are the document's).
function quoteInChunk(citation) {
  if (!citation.quote) return null;
  const at = flowing(citation.text).indexOf(flowing(citation.quote.text));
  return at < 0 ? null : [at, at + citation.quote.text.length];
}

// The passage in its surrounding text: the chunks before and after it, their overlap written once.
async function showSurroundings(citation, token) {
  const offset = Math.max(0, citation.chunk_index - 1);
  const path = `/v1/documents/${encodeURIComponent(citation.document_id)}/chunks?offset=${offset}&limit=3`;
  const page = await (await api(path)).json();
  if (!current(token)) return;
  const chunks = page.chunks;
  const own = chunks.find((c) => c.chunk_index === citation.chunk_index);
  if (!own) return;
  let text = "";
  let written = chunks[0].start;
  const base = written;
  for (const chunk of chunks) {
    if (chunk.start > written) {
      text += "\n\n";
      written = chunk.start; // a gap no chunk holds (a section break)
    }
    text += chunk.text.slice(Math.max(0, written - chunk.start));
    written = Math.max(written, chunk.end);
  }
  // Offsets inside `text` hold while no gap was filled; otherwise fall back to finding the strings.
  // A single line break (where a PDF line ended) reads as a space; same length, so offsets hold.
  text = flowing(text);
  let ownRange = [own.start - base, own.end - base];
  const ownText = flowing(own.text);
  if (text.slice(ownRange[0], ownRange[1]) !== ownText) {
    const at = text.indexOf(ownText);
    ownRange = at < 0 ? null : [at, at + ownText.length];
  }
  if (!ownRange) return;
  let quote = null;
  if (citation.quote) {
    const quoteText = flowing(citation.quote.text);
    const byOffset = citation.quote.start - own.start + ownRange[0]; // the document's offsets, if they hold
    const at = text.slice(byOffset, byOffset + quoteText.length) === quoteText ? byOffset : text.indexOf(quoteText, ownRange[0]);
    if (at >= 0) quote = [at, at + quoteText.length];
  }
  const passage = $("viewer-text");
  passage.replaceChildren(
    contextSpan(lastWords(text.slice(0, ownRange[0]))),
    ...highlightedRange(text, ownRange, quote),
    contextSpan(firstWords(text.slice(ownRange[1]))),
  );
  const mark = passage.querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "nearest" });
}

// Enough of the neighbouring chunks to read the passage in its place, not the whole of them.
function lastWords(text) {
  if (text.length <= CONTEXT_CHARS) return text;
  const tail = text.slice(-CONTEXT_CHARS);
  return "…" + tail.slice(tail.search(/\s/) + 1);
}

function firstWords(text) {
  if (text.length <= CONTEXT_CHARS) return text;
  const head = text.slice(0, CONTEXT_CHARS);
  return head.slice(0, Math.max(head.lastIndexOf(" "), 1)) + "…";
}

function flowing(text) {
  return text.replace(/(?<!\n)\n(?!\n)/g, " ");
}

function contextSpan(text) {
  const span = document.createElement("span");
  span.className = "context";
  span.textContent = text;
  return span;
}

function highlightedRange(text, [from, to], quote) {
  const own = document.createElement("span");
  own.className = "own";
  const inner = quote ? [quote[0] - from, quote[1] - from] : null;
  own.append(highlighted(text.slice(from, to), inner));
  return [own];
}

function highlighted(text, range) {
  const fragment = document.createDocumentFragment();
  if (!range || range[0] < 0 || range[1] > text.length) {
    fragment.append(text);
    return fragment;
  }
  const mark = document.createElement("mark");
  mark.textContent = text.slice(range[0], range[1]);
  fragment.append(text.slice(0, range[0]), mark, text.slice(range[1]));
  return fragment;
}

async function openDocument(doc, opener) {
  const token = showViewer(opener || document.activeElement, doc.filename);
  const facts = [doc.status, formatBytes(doc.bytes)];
  if (doc.pages) facts.push(`${doc.pages} pages`);
  if (doc.chunks) facts.push(`${doc.chunks} chunks`);
  $("viewer-meta").textContent = facts.join(" · ");
  if (doc.error) {
    $("viewer-text").textContent = `Failed: ${doc.error}`;
    return;
  }
  if (doc.content_type === "application/pdf" && doc.pages) {
    showPage(doc.id, 1, doc.pages);
  }
  try {
    await showOpening(doc.id, token);
  } catch (error) {
    if (current(token)) showFailure(error, "Reading the document");
  }
}

async function showOpening(documentId, token) {
  const page = await (await api(`/v1/documents/${encodeURIComponent(documentId)}/chunks?limit=20`)).json();
  if (!current(token)) return;
  const text = page.chunks.map((c) => (c.page ? `[page ${c.page}] ` : "") + flowing(c.text)).join("\n\n");
  $("viewer-text").textContent = text + (page.total > page.chunks.length ? `\n\n… ${page.total} chunks in all` : "");
}

function showViewer(opener, title) {
  const viewer = $("viewer");
  state.viewerToken += 1;
  state.viewer = {
    token: state.viewerToken,
    documentId: null,
    page: null,
    pages: null,
    quote: null,
    returnFocus: opener || null,
  };
  $("viewer-title").textContent = title;
  $("viewer-meta").textContent = "";
  $("viewer-text").replaceChildren();
  $("viewer-page").hidden = true;
  releasePageImage();
  viewer.hidden = false;
  $("viewer-title").focus();
  return state.viewerToken;
}

function closeViewer() {
  const viewer = $("viewer");
  if (viewer.hidden) return;
  viewer.hidden = true;
  releasePageImage();
  const back = state.viewer && state.viewer.returnFocus;
  state.viewer = null;
  // The opener may have been redrawn meanwhile (a document row as it progressed): then the list's heading.
  if (back && document.contains(back)) back.focus();
  else $("documents-heading").focus();
}

// The page image needs the key, which an <img src> cannot send: fetched, then shown from a blob URL.
async function showPage(documentId, number, pages) {
  if (!state.viewer) return;
  const token = state.viewer.token;
  Object.assign(state.viewer, { documentId, page: number, pages });
  $("viewer-page").hidden = false;
  $("page-label").textContent = pages ? `Page ${number} of ${pages}` : `Page ${number}`;
  $("page-prev").disabled = number <= 1;
  $("page-next").disabled = pages ? number >= pages : false;
  const image = $("page-image");
  image.alt = `Page ${number} of the document`;
  image.dataset.page = number;
  try {
    // In steps of 250 px, so that windows of about the same size share the server's cached drawing.
    const wanted = Math.round(image.clientWidth * (window.devicePixelRatio || 1)) || 1000;
    const width = Math.min(2000, Math.max(500, Math.ceil(wanted / 250) * 250));
    const path = `/v1/documents/${encodeURIComponent(documentId)}/pages/${number}.png`;
    let response;
    try {
      response = await api(`${path}?width=${width}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 422)) throw error;
      response = await api(path); // wider than this server draws (RAG_PAGE_IMAGE_MAX_WIDTH): its own width
    }
    const blob = await response.blob();
    if (!current(token) || state.viewer.documentId !== documentId || state.viewer.page !== number) return;
    releasePageImage();
    state.pageImageUrl = URL.createObjectURL(blob);
    image.src = state.pageImageUrl;
    const quote = state.viewer.quote;
    if (quote && quote.page === number) {
      await markQuoteOnPage(documentId, number, quote.text);
    }
  } catch (error) {
    if (current(token)) showFailure(error, "Drawing the page");
  }
}

// The quote's lines, boxed on the drawn page (the server finds them in the PDF's own text).
async function markQuoteOnPage(documentId, number, text) {
  const query = new URLSearchParams({ text: text.slice(0, 4000) });
  const path = `/v1/documents/${encodeURIComponent(documentId)}/pages/${number}/boxes?${query}`;
  const token = state.viewer && state.viewer.token;
  const body = await (await api(path)).json();
  if (!current(token) || state.viewer.documentId !== documentId || state.viewer.page !== number) return;
  const boxes = body.boxes.map((box) => {
    const element = document.createElement("div");
    element.className = "page-box";
    element.style.left = `${box.left * 100}%`;
    element.style.top = `${box.top * 100}%`;
    element.style.width = `${(box.right - box.left) * 100}%`;
    element.style.height = `${(box.bottom - box.top) * 100}%`;
    return element;
  });
  $("page-frame").append(...boxes);
  if (boxes.length) boxes[0].scrollIntoView({ block: "nearest" });
}

function releasePageImage() {
  for (const box of document.querySelectorAll(".page-box")) box.remove();
  if (state.pageImageUrl) {
    URL.revokeObjectURL(state.pageImageUrl);
    state.pageImageUrl = null;
  }
  $("page-image").removeAttribute("src");
}

function turnPage(step) {
  const viewer = state.viewer;
  if (!viewer || !viewer.documentId) return;
  const next = viewer.page + step;
  if (next < 1 || (viewer.pages && next > viewer.pages)) return;
  showPage(viewer.documentId, next, viewer.pages);
}

// --- start ---------------------------------------------------------------------------------------------

async function start() {
  try {
    await loadAccess();
    await loadCollections();
    if (state.collections.length && !state.collections.includes(state.collection) && !sessionStorage.getItem(COLLECTION_STORAGE)) {
      state.collection = state.collections[0]; // nothing chosen yet: start where there are documents
    }
  } catch (error) {
    showFailure(error, "Loading the collections");
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
  }
  renderCollections();
  renderAccess();
  refreshDocuments();
}

function wire() {
  wireDropzone();
  $("collection").addEventListener("change", (event) => chooseCollection(event.target.value));
  $("new-collection").addEventListener("submit", createCollection);
  $("filter-name").addEventListener("input", () => renderDocuments());
  $("filter-status").addEventListener("change", () => renderDocuments());
  $("ask").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("new-conversation").addEventListener("click", newConversation);
  $("viewer-close").addEventListener("click", closeViewer);
  $("page-prev").addEventListener("click", () => turnPage(-1));
  $("page-next").addEventListener("click", () => turnPage(1));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("key-dialog").open) closeViewer();
  });
  $("key-form").addEventListener("submit", useKey);
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-button").addEventListener("click", () => askForKey(""));
  $("error-close").addEventListener("click", hideBanner);
  $("key-button").hidden = !apiKey();
}

wire();
start();
