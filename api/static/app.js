// The page's entry point: wires the controls to a Run, the grid, the filter, the detail dialog and downloads.

import { ApiError, FINAL, getJob, getLimits, getResults, setApiKey } from "./api.js";
import { Dashboard, jobLabel } from "./dashboard.js";
import { Detail } from "./detail.js";
import { el, formatBytes, plural } from "./dom.js";
import { download } from "./download.js";
import { fromDrop, fromFileList } from "./files.js";
import { fillFilter } from "./filter.js";
import { Grid } from "./grid.js";
import { advice } from "./messages.js";
import { Run } from "./run.js";

const $ = (id) => document.getElementById(id);
// The key lives in this tab's sessionStorage: it survives a reload, not the tab.
const KEY_STORAGE = "posterq-api-key";
const grid = new Grid($("grid"), (poster, card) => detail.open(poster, card));
const detail = new Detail($("detail"));
let limits = null;
let run = null;
// The job the grid shows, opened from the dashboard and not final yet: {id, finished}; null otherwise.
let opened = null;

function showAlert(what, error) {
  if (error.status === 401) showKeyForm();
  const box = $("alert");
  box.replaceChildren(
    el("strong", { text: what }), " ",
    el("span", { class: "alert-cause", text: `(${error.code}: ${error.message})` }), " ",
    el("span", { class: "advice", text: advice(error, limits) }));
  box.hidden = false;
}

function hideAlert() {
  $("alert").hidden = true;
}

function showKeyForm() {
  $("key-form").hidden = false;
  if (!$("api-key").value) $("api-key").focus();
}

function useKey(key) {
  setApiKey(key);
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

async function loadLimits() {
  try {
    limits = await getLimits();
    $("limits").textContent = `Up to ${formatBytes(limits.max_file_bytes)} a poster. A large pick goes to `
      + "the server as several jobs; results appear job by job.";
    hideAlert();
  } catch (error) {
    showAlert("The page cannot read the server's limits.", error);
  }
  return limits;
}

function status(current) {
  const counts = current.counts();
  const parts = [];
  if (current.over) {
    const verb = current.failure ? "Stopped" : current.stopped ? "Cancelled" : "Done";
    parts.push(`${verb}: ${plural(counts.ok, "poster")} labelled`);
    if (counts.error) parts.push(plural(counts.error, "error"));
    if (counts.cancelled) parts.push(`${counts.cancelled.toLocaleString("en")} cancelled`);
    return `${parts.join(", ")}, in ${current.seconds.toFixed(1)} s.`;
  }
  if (current.stopped) return "Cancelling…";
  if (current.submitting && current.sent < current.bytes) {
    return `Uploading: ${formatBytes(current.sent)} of ${formatBytes(current.bytes)}; `
      + `${counts.finished.toLocaleString("en")} of ${plural(counts.total, "poster")} labelled.`;
  }
  return `Labelling: ${counts.finished.toLocaleString("en")} of ${plural(counts.total, "poster")}.`;
}

function details(current) {
  const parts = [];
  if (current.model) parts.push(`model ${current.model.name} ${current.model.version}`);
  if (current.jobs.length === 1) parts.push(`job ${current.jobs[0].id}`);
  else if (current.jobs.length) parts.push(plural(current.jobs.length, "job"));
  const seconds = (performance.now() - current.started) / 1000;
  const counts = current.counts();
  if (counts.finished && seconds > 0) parts.push(`${(counts.finished / (current.over ? current.seconds : seconds)).toFixed(1)} posters/s`);
  return parts.join(" · ");
}

const view = {
  changed(current) {
    const counts = current.counts();
    $("run-status").textContent = status(current);
    $("run-detail").textContent = details(current);
    $("progress").value = counts.total ? counts.finished / counts.total : 0;
    $("run").dataset.state = current.over ? "over" : "running";
    $("results").dataset.jobs = current.jobs.map((entry) => entry.id).join(" ");
    $("cancel").hidden = current.over;
    const ready = current.over && current.downloadable().length > 0;
    $("download-csv").disabled = !ready;
    $("download-jsonl").disabled = !ready;
    if (current.over) setBusy(false);
  },
  poster(poster) {
    grid.update(poster);
  },
  collected(current) {
    fillFilter($("filter"), current.posters);
    applyFilter();
  },
  trouble(current, error) {
    if (error) showAlert("Lost contact with the API; retrying.", error);
    else hideAlert();
  },
  failed(current, error) {
    showAlert("The upload failed.", error);
  },
};

function setBusy(busy) {
  for (const id of ["pick-files", "pick-folder", "top-k"]) $(id).disabled = busy;
  $("drop").classList.toggle("busy", busy);
}

function applyFilter() {
  if (!run) return;
  const shown = grid.filter($("filter").value);
  $("shown").textContent = `${shown.toLocaleString("en")} of ${plural(run.posters.length, "poster")} shown`;
}

/** Show these posters (run's) in the grid, every one at first; withRun: the run's status and progress too. */
function showPosters(posters, withRun) {
  grid.reset(posters);
  fillFilter($("filter"), posters);
  $("filter").value = "";
  applyFilter();
  $("run").hidden = !withRun;
  $("results").hidden = false;
}

/** A poster of a job opened from the dashboard, from its result row. */
function posterOf(row, index, job) {
  const poster = { index, name: row.name, file: null };
  if (row.status === "ok") return { ...poster, state: "ok", genres: row.genres, scores: row.scores };
  if (row.status === "error") return { ...poster, state: "error", error: row.error };
  return { ...poster, state: job.status === "cancelled" ? "cancelled" : "pending" };
}

/**
 * Show a job's results (one the dashboard lists) in the grid, as a finished run's are shown.
 * quiet: a refresh of the job already shown (the filter stays, the focus does not move).
 */
async function openJob(entry, { quiet = false } = {}) {
  if (run && !run.over) {
    showAlert("A run is under way.", new ApiError("busy", "wait for it to end, or cancel it, then open the job"));
    return;
  }
  let job;
  let rows;
  try {
    [job, rows] = await Promise.all([getJob(entry.id), getResults(entry.id)]);
  } catch (error) {
    showAlert(`${jobLabel(entry)} cannot be opened.`, error);
    return;
  }
  hideAlert();
  const posters = rows.map((row, index) => posterOf(row, index, job));
  const finished = job.done + job.failed;
  // Shaped as a finished Run, so that the filter and the downloads serve it unchanged.
  run = { posters, over: true, downloadable: () => (finished ? [job.id] : []) };
  const filter = quiet ? $("filter").value : "";
  showPosters(posters, false);
  $("filter").value = [...$("filter").options].some((option) => option.value === filter) ? filter : "";
  applyFilter();
  opened = FINAL.has(job.status) ? null : { id: job.id, finished };
  $("results").dataset.jobs = job.id;
  $("download-csv").disabled = !finished;
  $("download-jsonl").disabled = !finished;
  const title = $("results-title");
  title.textContent = `${jobLabel({ ...entry, ...job })}: ${job.status}, ${finished.toLocaleString("en")} of `
    + `${plural(job.total, "poster")}`;
  title.hidden = false;
  if (!quiet) title.focus();
}

/** After each poll of the dashboard: the job the grid shows again, once more of its posters are done. */
function polled(jobs) {
  const job = opened && jobs.find((entry) => entry.id === opened.id);
  if (!job || (job.done + job.failed === opened.finished && !FINAL.has(job.status))) return;
  opened.finished = job.done + job.failed; // one refresh for this much progress, however long it takes
  openJob(job, { quiet: true });
}

async function start(posters) {
  if (run && !run.over) return;
  opened = null;
  $("results-title").hidden = true;
  if (!posters.length) {
    showAlert("Nothing to label.", new ApiError("no_posters", "the pick holds no files"));
    return;
  }
  if (!limits && !(await loadLimits())) return;
  hideAlert();
  posters.forEach((poster, index) => Object.assign(poster, { index, state: "pending" }));
  run = new Run(posters, limits, $("top-k").value, view);
  showPosters(posters, true);
  setBusy(true);
  view.changed(run);
  await run.start();
}

function pick(input) {
  const posters = fromFileList(input.files);
  input.value = ""; // picking the same files again starts a new run
  start(posters);
}

async function save(format) {
  try {
    await download(run.downloadable(), format);
  } catch (error) {
    showAlert("The download failed.", error);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("api-key").value.trim());
  loadLimits();
dashboard.start();
  dashboard.refresh();
});
$("pick-files").addEventListener("click", () => $("files").click());
$("pick-folder").addEventListener("click", () => $("folder").click());
$("files").addEventListener("change", () => pick($("files")));
$("folder").addEventListener("change", () => pick($("folder")));
$("cancel").addEventListener("click", () => run && run.cancel());
$("filter").addEventListener("change", applyFilter);
$("download-csv").addEventListener("click", () => save("csv"));
$("download-jsonl").addEventListener("click", () => save("jsonl"));

// The whole page takes drops, so that a poster dropped beside the box is not opened by the browser instead.
let depth = 0;
document.addEventListener("dragenter", (event) => {
  event.preventDefault();
  depth += 1;
  $("drop").classList.add("over");
});
document.addEventListener("dragleave", () => {
  depth = Math.max(0, depth - 1);
  if (!depth) $("drop").classList.remove("over");
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", async (event) => {
  event.preventDefault();
  depth = 0;
  $("drop").classList.remove("over");
  if (run && !run.over) return;
  try {
    start(await fromDrop(event.dataTransfer));
  } catch (error) {
    showAlert("The dropped files cannot be read.", new ApiError("unreadable", String(error.message || error)));
  }
});

const dashboard = new Dashboard($("dashboard"), $("operators"), {
  open: (job) => openJob(job), failed: showAlert, polled,
});

const storedKey = sessionStorage.getItem(KEY_STORAGE);
if (storedKey) {
  $("api-key").value = storedKey;
  useKey(storedKey);
  $("key-form").hidden = false;
}
loadLimits();
dashboard.start();
