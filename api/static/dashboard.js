// The jobs dashboard: the caller's jobs (every job without API keys), polled; open, cancel or retry one.

import { FINAL, cancelJob, getDashboard, retryJob } from "./api.js";
import { el, formatDuration, formatRate } from "./dom.js";
import { showOperators } from "./operators.js";

// How often the table is read again while the tab is visible.
const POLL_MS = 2000;
// Jobs shown at first, added by each "Show older jobs", and the most one answer of the API holds.
const PAGE = 20;
const MOST = 100;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the name column shows: the job's name, else the start of its id. */
export function jobLabel(job) {
  return job.name || `job ${job.id.slice(0, 8)}`;
}

function counts(job) {
  const parts = [`${(job.done + job.failed).toLocaleString("en")} of ${job.total.toLocaleString("en")}`];
  if (job.failed) parts.push(`${job.failed.toLocaleString("en")} failed`);
  if (!job.enumerated) parts.push("listing");
  return parts.join(", ");
}

export class Dashboard {
  /**
   * section: the jobs section (ids jobs, jobs-empty, jobs-state); operators: the operators' section;
   * actions: {open(job), failed(what, error), polled(jobs)}: open a job's results, report a failed
   * cancel or retry, hear of each poll's jobs.
   */
  constructor(section, operators, actions) {
    this.section = section;
    this.operators = operators;
    this.actions = actions;
    this.rows = new Map(); // job id -> {row, job}
    this.body = section.querySelector("#jobs");
    this.state = section.querySelector("#jobs-state");
    this.wake = null;
    this.limit = PAGE;
    this.more = section.querySelector("#jobs-more");
    this.body.addEventListener("click", (event) => this.clicked(event));
    this.more.addEventListener("click", () => {
      this.limit = Math.min(MOST, this.limit + PAGE);
      this.refresh();
    });
  }

  /** Poll until the page closes: at once, then every POLL_MS while the tab is visible. */
  async start() {
    document.addEventListener("visibilitychange", () => this.refresh());
    for (;;) {
      if (document.visibilityState !== "hidden") await this.refresh();
      await Promise.race([sleep(POLL_MS), new Promise((resolve) => { this.wake = resolve; })]);
    }
  }

  /** Read the dashboard now and show it. */
  async refresh() {
    let board;
    try {
      board = await getDashboard({ limit: this.limit });
    } catch (error) {
      // Said here, not in the page's alert: a poll must not hide what a person's own action reported.
      this.state.textContent = error.status === 401
        ? "Type your API key above to see your jobs."
        : `The jobs cannot be read just now (${error.code}: ${error.message}); trying again.`;
      this.section.dataset.state = "error";
      return;
    }
    this.show(board.jobs);
    this.actions.polled(board.jobs);
    this.more.hidden = board.next_offset === null || this.limit >= MOST;
    this.state.textContent = `Updated ${new Date(board.now * 1000).toLocaleTimeString("en")}.`;
    this.section.dataset.state = "ok";
    this.operators.hidden = !board.operators;
    if (board.operators) showOperators(this.operators, board.operators);
  }

  show(jobs) {
    const rows = jobs.map((job) => this.row(job));
    this.rows = new Map(jobs.map((job, index) => [job.id, { row: rows[index], job }]));
    // Rows are kept and updated in place, so a focused button keeps its focus across polls.
    this.body.replaceChildren(...rows);
    this.section.querySelector("#jobs-empty").hidden = jobs.length > 0;
  }

  row(job) {
    const known = this.rows.get(job.id);
    const row = known ? known.row : el("tr", { "data-id": job.id });
    row.dataset.status = job.status;
    const progress = el("progress", { max: 1, value: job.progress, "aria-label": `${jobLabel(job)}: ${counts(job)}` });
    const actions = el("td", { class: "actions" },
      FINAL.has(job.status) ? null : el("button", { type: "button", class: "job-cancel", text: "Cancel",
        "aria-label": `Cancel ${jobLabel(job)}` }),
      // Only a final folder job's failed posters can be sent again: an upload's bytes go once labelled.
      retriable(job) ? el("button", { type: "button", class: "job-retry", text: "Retry failed",
        "aria-label": `Retry the failed posters of ${jobLabel(job)}` }) : null);
    const origin = job.folder ? `${job.source} ${job.folder}` : job.source;
    const source = job.output ? `${origin} → ${job.output}` : origin;
    const focused = row.contains(document.activeElement) ? document.activeElement.className : null;
    row.replaceChildren(
      el("th", { scope: "row" }, el("button", { type: "button", class: "job-open link", text: jobLabel(job),
        title: `Open job ${job.id} in the results below` })),
      el("td", { class: "source", text: source, title: source }),
      el("td", {}, el("span", { class: "status", "data-status": job.status, text: job.status })),
      el("td", { class: "job-progress" }, progress, el("span", { class: "hint", text: counts(job) })),
      el("td", { class: "number", text: formatRate(job.posters_per_second) }),
      el("td", { class: "number", text: job.eta_s === null ? "—" : formatDuration(job.eta_s) }),
      el("td", { text: job.model || "—" }),
      el("td", { class: "number", text: formatDuration(job.age_s) }),
      actions);
    if (focused) {
      const again = row.querySelector(`.${focused.split(" ")[0]}`);
      if (again) again.focus();
    }
    return row;
  }

  async clicked(event) {
    const button = event.target.closest("button");
    const entry = button && this.rows.get(button.closest("tr").dataset.id);
    if (!entry) return;
    const { job } = entry;
    if (button.classList.contains("job-open")) {
      this.actions.open(job);
      return;
    }
    button.disabled = true;
    try {
      if (button.classList.contains("job-cancel")) await cancelJob(job.id);
      else if (button.classList.contains("job-retry")) await retryJob(job.id);
    } catch (error) {
      const what = button.classList.contains("job-cancel") ? "cancelled" : "retried";
      this.actions.failed(`${jobLabel(job)} could not be ${what}.`, error);
    } finally {
      button.disabled = false;
    }
    if (this.wake) this.wake();
  }
}

/** True for a job whose failed posters POST /jobs/<id>/retry can send again: final, from a folder. */
function retriable(job) {
  return job.failed > 0 && FINAL.has(job.status) && job.source === "directory";
}
