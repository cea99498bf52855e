// The web page: upload recordings, follow each job, read, play, copy and download the transcript, and
// manage recent jobs. Plain browser JavaScript against the public REST API: nothing here the API's other
// clients cannot do.
"use strict";

const FINAL = new Set(["completed", "failed", "canceled"]);
const KEY_STORAGE = "tingxie.key";
const UI_STORAGE = "tingxie.ui";
const RECENT_LIMIT = 20;
const POLL_MS = 1000;

const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  ui: chooseUi(),
  languages: ["auto"],
  recordings: new Map(), // job id -> the File it was made from, to play its segments
  shown: null, // the job whose transcript is on the page
  stopAt: null, // where the segment being played ends
};

const $ = (id) => document.getElementById(id);

function chooseUi() {
  const saved = localStorage.getItem(UI_STORAGE);
  if (saved === "zh" || saved === "en") return saved;
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  return preferred.some((tag) => (tag || "").toLowerCase().startsWith("zh")) ? "zh" : "en";
}

function t(name, ...values) {
  const text = STRINGS[state.ui][name] ?? STRINGS.en[name] ?? name;
  return text.replace(/\{(\d)\}/g, (_, index) => String(values[Number(index)] ?? ""));
}

function applyUi() {
  document.documentElement.lang = state.ui === "zh" ? "zh-CN" : "en";
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  $("ui-switch").textContent = t("switchTo");
  fillLanguages();
  showChosen();
  renderRecent(lastRecent);
  if (state.shown) renderResultTitle(state.shown);
}

// --- talking to the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch {
    throw new ApiError(0, "network", t("network"));
  }
  if (!response.ok) throw await errorOf(response.status, () => response.json());
  return response;
}

async function errorOf(status, readBody) {
  let body = null;
  try {
    body = await readBody();
  } catch {
    body = null;
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(status, error.code || `http_${status}`, error.message || `HTTP ${status}`);
}

// One sentence for the person at the page: what went wrong and what to do about it.
function explain(error) {
  if (!(error instanceof ApiError)) return t("error", "page", String(error));
  if (error.status === 0) return t("network");
  if (error.status === 401) return t("unauthorized", error.message);
  if (error.status === 413) return t("tooLarge", error.message);
  if (error.status === 422) return t("invalid", error.message);
  if (error.status === 429) return t("rateLimited", error.message);
  if (error.status === 503) return t("unavailable", error.message);
  return t("error", error.code, error.message);
}

function say(text, kind = "error") {
  const message = $("message");
  message.textContent = text;
  message.className = kind === "error" ? "message" : "message info";
  message.hidden = !text;
}

// --- the language menu ----------------------------------------------------------------------------

async function loadEngines() {
  try {
    const engines = await (await api("/v1/engines")).json();
    state.languages = engines.languages;
    fillLanguages();
    offerSpeakerLabels(engines.diarization);
  } catch (error) {
    say(explain(error));
  }
}

function fillLanguages() {
  const menu = $("language");
  const chosen = menu.value || "auto";
  menu.replaceChildren(
    ...state.languages.map((code) => {
      const label = code === "auto" ? t("auto") : `${languageName(code, state.ui)} (${code})`;
      return new Option(label, code, false, code === chosen);
    }),
  );
}

// The switch is shown only where the workers can label speakers, set as the server would decide.
function offerSpeakerLabels(diarization) {
  if (!diarization || !diarization.available) return;
  $("diarize").checked = diarization.default === "on";
  $("diarize-option").hidden = false;
}

// --- choosing files and submitting ----------------------------------------------------------------

let chosenFiles = [];

function choose(files) {
  chosenFiles = Array.from(files);
  showChosen();
}

function showChosen() {
  $("chosen").textContent = chosenFiles.length ? t("chosen", chosenFiles.length, chosenFiles.map((f) => f.name).join(", ")) : "";
}

function watchDrops() {
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    choose(event.dataTransfer.files);
  });
  $("files").addEventListener("change", (event) => choose(event.target.files));
}

async function submitChosen(event) {
  event.preventDefault();
  if (!chosenFiles.length) {
    say(t("noFiles"));
    return;
  }
  say("");
  const language = $("language").value;
  const files = chosenFiles;
  chosenFiles = [];
  $("files").value = "";
  showChosen();
  await Promise.all(files.map((file) => transcribe(file, language)));
  refreshRecent();
}

async function transcribe(file, language) {
  const card = jobCard(file.name);
  $("active").prepend(card.element);
  let job;
  try {
    job = await upload(file, language, (fraction) => card.show(fraction, t("uploading", Math.round(fraction * 100))));
  } catch (error) {
    card.fail(explain(error));
    say(explain(error));
    return;
  }
  state.recordings.set(job.id, file);
  card.follow(job);
  try {
    const final = await follow(job, (snapshot) => card.update(snapshot));
    card.update(final);
    if (final.status === "completed") await openResult(final.id);
  } catch (error) {
    card.fail(explain(error));
  }
}

// XMLHttpRequest rather than fetch: only it reports upload progress.
function upload(file, language, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onload = () => {
      if (request.status === 202 || request.status === 200) resolve(JSON.parse(request.responseText));
      else errorOf(request.status, () => JSON.parse(request.responseText)).then(reject);
    };
    request.onerror = () => reject(new ApiError(0, "network", t("network")));
    const form = new FormData();
    form.append("language", language);
    form.append("priority", "interactive");
    if (!$("diarize-option").hidden) form.append("diarize", $("diarize").checked ? "true" : "false");
    form.append("file", file); // last: the server reads the fields before the audio streams past
    request.send(form);
  });
}

// --- following a job: its live event stream, or polling where that fails -------------------------

async function follow(job, onChange) {
  try {
    const final = await streamEvents(job.id, onChange);
    if (final) return await jobOf(job.id);
  } catch {
    // a proxy that buffers or cuts event streams: fall back to polling
  }
  return poll(job.id, onChange);
}

// Server-Sent Events read through fetch, since EventSource cannot send an Authorization header.
async function streamEvents(jobId, onChange) {
  const response = await api(`/v1/jobs/${jobId}/events`, { headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const snapshot = eventData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!snapshot) continue;
      onChange(snapshot);
      if (FINAL.has(snapshot.status)) {
        reader.cancel();
        return snapshot;
      }
    }
  }
}

function eventData(block) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trim())
    .join("\n");
  return data ? JSON.parse(data) : null;
}

async function poll(jobId, onChange) {
  for (;;) {
    const job = await jobOf(jobId);
    onChange(job);
    if (FINAL.has(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function jobOf(jobId) {
  return (await api(`/v1/jobs/${jobId}`)).json();
}

// --- a job's line: name, bar, status, buttons -----------------------------------------------------

function jobCard(name) {
  const element = document.createElement("li");
  element.className = "job";
  const label = Object.assign(document.createElement("span"), { className: "name", textContent: name, title: name });
  const buttons = Object.assign(document.createElement("span"), { className: "buttons" });
  const bar = Object.assign(document.createElement("progress"), { max: 1 });
  bar.setAttribute("value", "0");
  const status = Object.assign(document.createElement("span"), { className: "status" });
  element.append(label, buttons, bar, status);
  const card = {
    element,
    show(fraction, text, kind = "") {
      bar.setAttribute("value", String(Math.max(0, Math.min(1, fraction))));
      status.textContent = text;
      status.className = `status ${kind}`;
    },
    fail(text) {
      bar.hidden = true;
      card.show(0, text, "failed");
    },
    follow(job) {
      element.dataset.job = job.id;
      const cancel = button(t("cancel"), () => cancelJob(job.id).then((done) => done && card.update(done)));
      cancel.className = "cancel";
      buttons.replaceChildren(cancel);
      card.update(job);
    },
    update(job) {
      const [fraction, text, kind] = describe(job);
      card.show(fraction, text, kind);
      if (FINAL.has(job.status)) {
        bar.hidden = job.status !== "completed";
        buttons.replaceChildren(...(job.status === "completed" ? [button(t("open"), () => openResult(job.id))] : []));
      }
    },
  };
  return card;
}

// A job or event snapshot as [fraction done, status text, style].
function describe(job) {
  const progress = job.progress || {};
  if (job.status === "completed") return [1, t("completed"), "completed"];
  if (job.status === "canceled") return [0, t("canceled"), ""];
  if (job.status === "failed") {
    const error = job.error || { code: "failed", message: "" };
    return [0, t("failed", error.code, error.message), "failed"];
  }
  if (job.status === "queued") return [0, t("queued"), ""];
  if (progress.chunks_total) {
    return [progress.chunks_done / progress.chunks_total, t("processing", progress.chunks_done, progress.chunks_total), ""];
  }
  // Chunks are transcribed while the rest is still being cut: the total is not known yet.
  const cut = progress.chunks_cut || 0;
  return [cut ? (0.5 * progress.chunks_done) / cut : 0, t("preparing", cut), ""];
}

function button(text, onClick) {
  const element = Object.assign(document.createElement("button"), { type: "button", textContent: text });
  element.addEventListener("click", onClick);
  return element;
}

// --- the transcript -------------------------------------------------------------------------------

async function openResult(jobId) {
  try {
    const [job, transcript] = await Promise.all([
      jobOf(jobId),
      api(`/v1/jobs/${jobId}/transcript?format=json`).then((response) => response.json()),
    ]);
    state.shown = job;
    renderResult(job, transcript.segments);
  } catch (error) {
    say(explain(error));
  }
}

function renderResultTitle(job) {
  $("result-title").textContent = t("resultOf", job.filename || job.id);
}

function renderResult(job, segments) {
  renderResultTitle(job);
  $("warnings").replaceChildren(
    ...job.warnings.map((warning) => Object.assign(document.createElement("li"), { textContent: `${warning.code}: ${warning.message}` })),
  );
  setRecording(state.recordings.get(job.id));
  const list = $("segments");
  list.replaceChildren(...segments.map(segmentLine));
  if (!segments.length) list.replaceChildren(Object.assign(document.createElement("li"), { className: "hint", textContent: t("noSegments") }));
  $("result").hidden = false;
}

function setRecording(file) {
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.removeAttribute("src");
  player.hidden = !file;
  $("no-audio").hidden = Boolean(file);
  if (file) player.src = URL.createObjectURL(file);
}

function segmentLine(segment) {
  const line = document.createElement("li");
  line.className = "segment";
  line.dataset.start = String(segment.start);
  line.dataset.end = String(segment.end);
  line.tabIndex = 0;
  const when = Object.assign(document.createElement("span"), {
    className: "when",
    textContent: `${clock(segment.start)}–${clock(segment.end)}`,
  });
  const text = Object.assign(document.createElement("span"), { className: "text" });
  const tag = Object.assign(document.createElement("span"), { className: "tag", textContent: `[${segment.language || "unknown"}]` });
  const speaker = segment.speaker
    ? [Object.assign(document.createElement("span"), { className: "tag speaker", textContent: `[${segment.speaker}]` })]
    : [];
  text.append(...speaker, tag, document.createTextNode(segment.text));
  line.append(when, text);
  line.addEventListener("click", () => play(line, segment));
  line.addEventListener("keydown", (event) => event.key === "Enter" && play(line, segment));
  return line;
}

function clock(seconds) {
  const whole = Math.floor(seconds);
  const tenths = Math.floor((seconds - whole) * 10);
  const hours = Math.floor(whole / 3600);
  const minutes = String(Math.floor((whole % 3600) / 60)).padStart(2, "0");
  const secs = String(whole % 60).padStart(2, "0");
  return `${hours ? `${hours}:` : ""}${minutes}:${secs}.${tenths}`;
}

function play(line, segment) {
  const player = $("player");
  if (player.hidden) return;
  for (const other of document.querySelectorAll(".segment.playing")) other.classList.remove("playing");
  line.classList.add("playing");
  state.stopAt = segment.end;
  player.currentTime = segment.start;
  player.play().catch(() => {}); // a browser that refuses to play still shows the position
}

function stopAtSegmentEnd() {
  const player = $("player");
  if (state.stopAt !== null && player.currentTime >= state.stopAt) {
    player.pause();
    state.stopAt = null;
  }
}

async function download(format) {
  if (!state.shown) return;
  try {
    const blob = await (await api(`/v1/jobs/${state.shown.id}/transcript?format=${format}`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${stem(state.shown.filename || state.shown.id)}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    say(explain(error));
  }
}

function stem(filename) {
  const dot = filename.lastIndexOf(".");
  return dot > 0 ? filename.slice(0, dot) : filename;
}

async function copyAll() {
  if (!state.shown) return;
  try {
    const text = await (await api(`/v1/jobs/${state.shown.id}/transcript?format=txt`)).text();
    await writeClipboard(text);
    say(t("copied"), "info");
  } catch (error) {
    say(explain(error));
  }
}

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on a LAN address is not a secure context: the older way still works there.
  const area = Object.assign(document.createElement("textarea"), { value: text });
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

// --- recent jobs ----------------------------------------------------------------------------------

let lastRecent = [];

async function refreshRecent() {
  try {
    const listed = await (await api(`/v1/jobs?limit=${RECENT_LIMIT}`)).json();
    lastRecent = listed.jobs;
    renderRecent(lastRecent);
  } catch (error) {
    say(explain(error));
  }
}

function renderRecent(jobs) {
  $("recent-jobs").replaceChildren(...jobs.map(recentLine));
  $("recent-empty").hidden = jobs.length > 0;
}

function recentLine(job) {
  const element = document.createElement("li");
  element.className = "job";
  element.dataset.job = job.id;
  const created = new Date(job.created_at).toLocaleString(state.ui === "zh" ? "zh-CN" : "en");
  const name = Object.assign(document.createElement("span"), { className: "name", textContent: job.filename || job.id, title: job.id });
  const [, text, kind] = describe(job);
  const duration = job.duration_s ? ` · ${clock(job.duration_s)}` : "";
  const status = Object.assign(document.createElement("span"), { className: `status ${kind}`, textContent: `${text} · ${created}${duration}` });
  const buttons = Object.assign(document.createElement("span"), { className: "buttons" });
  if (job.status === "completed") buttons.append(button(t("open"), () => openResult(job.id)));
  if (!FINAL.has(job.status)) buttons.append(button(t("cancel"), () => cancelJob(job.id).then(refreshRecent)));
  buttons.append(button(t("delete"), () => deleteJob(job.id)));
  element.append(name, buttons, status);
  return element;
}

async function cancelJob(jobId) {
  try {
    return await (await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" })).json();
  } catch (error) {
    say(explain(error));
    return null;
  }
}

async function deleteJob(jobId) {
  if (!window.confirm(t("confirmDelete"))) return;
  try {
    await api(`/v1/jobs/${jobId}`, { method: "DELETE" });
    if (state.shown && state.shown.id === jobId) {
      state.shown = null;
      $("result").hidden = true;
    }
    state.recordings.delete(jobId);
    refreshRecent();
  } catch (error) {
    say(explain(error));
  }
}

// --- the API key ----------------------------------------------------------------------------------

function saveKey(event) {
  event.preventDefault();
  state.key = $("key-input").value.trim();
  if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
  else localStorage.removeItem(KEY_STORAGE);
  say(state.key ? t("keySaved") : t("keyForgotten"), "info");
  loadEngines();
  refreshRecent();
}

function forgetKey() {
  $("key-input").value = "";
  saveKey(new Event("submit"));
}

// --- start ----------------------------------------------------------------------------------------

function start() {
  $("key-input").value = state.key;
  $("key-form").addEventListener("submit", saveKey);
  $("key-clear").addEventListener("click", forgetKey);
  $("ui-switch").addEventListener("click", () => {
    state.ui = state.ui === "zh" ? "en" : "zh";
    localStorage.setItem(UI_STORAGE, state.ui);
    applyUi();
  });
  $("submit-form").addEventListener("submit", submitChosen);
  $("refresh").addEventListener("click", refreshRecent);
  $("copy").addEventListener("click", copyAll);
  for (const element of document.querySelectorAll("[data-format]")) {
    element.addEventListener("click", () => download(element.dataset.format));
  }
  $("player").addEventListener("timeupdate", stopAtSegmentEnd);
  watchDrops();
  applyUi();
  loadEngines();
  refreshRecent();
}

start();
