// The vt cogvideo page: submits the form as an async job (POST /jobs), polls its status and
// plays the result. No framework, no build step; the token (when the server needs one) is
// sent as "Authorization: Bearer" and kept in localStorage only if the user asks.
"use strict";

const TOKEN_KEY = "vt-cogvideo-token";
const FIELDS = ["prompt", "negative_prompt", "mode", "num_inference_steps", "guidance_scale",
  "num_frames", "fps", "width", "height", "seed", "fit", "lora"];
const POLL_MS = 500;

const $ = (id) => document.getElementById(id);
let currentJob = null;
let pollTimer = null;

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function rememberToken() {
  const token = $("token").value.trim();
  if ($("remember").checked && token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function loadHealth() {
  try {
    const health = await api("/health");
    const q = health.queue;
    $("health").textContent = `model ${health.model} · ${q.running ? "busy" : "idle"}, ` +
      `${q.waiting} waiting (of ${q.capacity})`;
    $("auth").hidden = !health.auth;
    if (health.loras) loadLoras();
  } catch (err) {
    $("health").textContent = `server unreachable (${err.message})`;
    $("health").classList.add("error");
  }
}

async function loadLoras() {
  try {
    const { loras } = await api("/loras");
    const select = $("lora");
    for (const name of loras) select.add(new Option(name, name));
    select.disabled = loras.length === 0;
  } catch (_) { /* no token yet: the list stays empty */ }
}

function formData() {
  const data = new FormData();
  data.append("image", $("image").files[0]);
  for (const name of FIELDS) {
    const value = $(name).value.trim();
    if (value !== "") data.append(name, value);  // empty: the server's (model's) default
  }
  return data;
}

function showJob(job) {
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  $("progress").value = job.progress;
  const steps = job.total_steps ? ` (step ${job.step} of ${job.total_steps})` : "";
  const texts = {
    queued: `queued, ${job.position} ahead`,
    running: `generating${steps}${job.cancel_requested ? ", cancelling…" : ""}`,
    done: "done",
    failed: `failed: ${job.error}`,
    cancelled: `cancelled${job.error ? ` (${job.error})` : ""}`,
  };
  setStatus(texts[job.status] || job.status, job.status === "failed");
  $("cancel").hidden = !(job.status === "queued" || job.status === "running");
}

function showResult(result) {
  const video = $("video");
  video.src = result.url;
  $("download").href = result.url;
  $("download").setAttribute("download", result.output);
  const facts = {
    file: result.output,
    size: `${result.width}×${result.height}, ${result.frames} frames at ${result.fps} fps`,
    seed: result.seed,
    "temporal score": result.temporal_score.toFixed(3),
    time: `${result.timings.total_s.toFixed(1)} s`,
  };
  const list = $("facts");
  list.replaceChildren();
  for (const [key, value] of Object.entries(facts)) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
  $("result").hidden = false;
}

async function poll() {
  if (!currentJob) return;
  try {
    const job = await api(`/jobs/${currentJob}`);
    showJob(job);
    if (job.status === "done") {
      showResult(job.result);
    }
    if (["done", "failed", "cancelled"].includes(job.status)) {
      currentJob = null;
      $("submit").disabled = false;
      loadHealth();
      return;
    }
  } catch (err) {
    setStatus(`cannot read the job: ${err.message}`, true);
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

async function submit(event) {
  event.preventDefault();
  rememberToken();
  if (!$("image").files.length) { setStatus("pick an image first", true); return; }
  $("submit").disabled = true;
  $("result").hidden = true;
  $("job").hidden = false;
  setStatus("uploading…");
  try {
    const job = await api("/jobs", { method: "POST", body: formData() });
    currentJob = job.id;
    showJob(job);
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  } catch (err) {
    setStatus(`not queued: ${err.message}`, true);
    $("cancel").hidden = true;
    $("submit").disabled = false;
  }
}

async function cancel() {
  if (!currentJob) return;
  try {
    showJob(await api(`/jobs/${currentJob}`, { method: "DELETE" }));
  } catch (err) {
    setStatus(`cannot cancel: ${err.message}`, true);
  }
}

function preview() {
  const file = $("image").files[0];
  const img = $("preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.hidden = !file;
  if (file) img.src = URL.createObjectURL(file);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = localStorage.getItem(TOKEN_KEY) || "";
  $("generate").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  $("image").addEventListener("change", preview);
  $("token").addEventListener("change", () => { rememberToken(); loadHealth(); });
  loadHealth();
});
