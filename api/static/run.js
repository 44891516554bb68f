// One run of the page: send the posters as jobs, follow them live (GET ?wait=1), collect results.

import { FINAL, cancelJob, getJob, getResults, submitJob } from "./api.js";
import { refusedError } from "./messages.js";
import { plan } from "./plan.js";

// Seconds each poll may wait for the job to finish: one answer a second while it runs, at once when it is done.
const WAIT_SECONDS = 1;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const bytesOf = (posters) => posters.reduce((sum, poster) => sum + poster.file.size, 0);

export class Run {
  /**
   * posters: [{index, file, name, state: "pending"}]; view: {changed(run), poster(poster),
   * collected(run), trouble(run, error|null), failed(run, error)}.
   */
  constructor(posters, limits, topK, view) {
    this.posters = posters;
    this.limits = limits;
    this.topK = topK;
    this.view = view;
    this.jobs = []; // {id, posters, job, collected}
    this.submitting = true;
    this.stopped = false;
    this.over = false;
    this.upload = null;
    this.sent = 0;
    this.bytes = 0;
    this.model = null;
    this.failure = null;
    this.started = performance.now();
    this.seconds = 0;
  }

  /** Send, follow and collect everything; resolves when every poster is settled. */
  async start() {
    const { jobs, refused } = plan(this.posters, this.limits);
    for (const poster of refused) this.settle(poster, { state: "error", error: refusedError(poster, this.limits) });
    this.bytes = jobs.reduce((sum, batch) => sum + bytesOf(batch), 0);
    const watching = this.watch();
    await this.submit(jobs);
    this.submitting = false;
    this.view.changed(this);
    await watching;
    for (const poster of this.posters) if (poster.state === "pending") this.settle(poster, { state: "cancelled" });
    this.over = true;
    this.seconds = (performance.now() - this.started) / 1000;
    this.view.changed(this);
  }

  /** Stop: abort the upload, cancel the jobs still running; results already shown stay. */
  async cancel() {
    if (this.stopped || this.over) return;
    this.stopped = true;
    if (this.upload) this.upload.abort();
    await Promise.allSettled(this.jobs.filter((entry) => !entry.collected).map((entry) => cancelJob(entry.id)));
  }

  /** The posters settled or reported finished by their job, and how they ended. */
  counts() {
    const counts = { total: this.posters.length, ok: 0, error: 0, cancelled: 0, pending: 0, live: 0 };
    for (const poster of this.posters) counts[poster.state] += 1;
    for (const entry of this.jobs) {
      if (!entry.collected && entry.job) counts.live += entry.job.done + entry.job.failed;
    }
    counts.finished = counts.ok + counts.error + counts.cancelled + counts.live;
    return counts;
  }

  /** The ids of the jobs whose results can be downloaded. */
  downloadable() {
    return this.jobs.filter((entry) => entry.collected && entry.job.status !== "cancelled").map((entry) => entry.id);
  }

  settle(poster, fields) {
    Object.assign(poster, fields);
    this.view.poster(poster);
  }

  async submit(batches) {
    for (const [number, batch] of batches.entries()) {
      if (this.stopped) break;
      const before = this.sent;
      const size = bytesOf(batch);
      this.upload = submitJob(batch, this.topK, (loaded, total) => {
        this.sent = before + (total ? size * Math.min(1, loaded / total) : 0);
        this.view.changed(this);
      });
      try {
        const job = await this.upload.promise;
        this.jobs.push({ id: job.id, posters: batch, job, collected: false });
      } catch (error) {
        const unsent = batches.slice(number).flat();
        if (this.stopped) {
          for (const poster of unsent) this.settle(poster, { state: "cancelled" });
        } else {
          this.failure = error;
          const message = `the upload failed (${error.code}: ${error.message}); this poster was not sent`;
          for (const poster of unsent) this.settle(poster, { state: "error", error: { code: "not_sent", message } });
          this.view.failed(this, error);
        }
        break;
      } finally {
        this.upload = null;
      }
      this.sent = before + size;
      this.view.changed(this);
    }
  }

  async watch() {
    let next = 0;
    let failures = 0;
    while (next < this.jobs.length || this.submitting) {
      const entry = this.jobs[next];
      if (!entry) {
        await sleep(50); // the next job is still uploading
        continue;
      }
      if (this.stopped) {
        entry.job = { ...entry.job, status: "cancelled" };
        next += 1;
        continue;
      }
      try {
        entry.job = await getJob(entry.id, { wait: WAIT_SECONDS });
        this.model = this.model || entry.job.model;
        if (FINAL.has(entry.job.status)) {
          await this.collect(entry);
          next += 1;
        }
        if (failures) this.view.trouble(this, null);
        failures = 0;
      } catch (error) {
        if (error.code === "job_not_found") {
          for (const poster of entry.posters) this.settle(poster, { state: "error", error: { code: error.code, message: error.message } });
          entry.collected = true;
          next += 1;
          continue;
        }
        failures += 1;
        this.view.trouble(this, error);
        await sleep(Math.min(10000, 250 * 2 ** failures));
      }
      this.view.changed(this);
    }
  }

  async collect(entry) {
    const results = entry.job.status === "cancelled" ? [] : await getResults(entry.id);
    const byIndex = new Map(results.map((row) => [row.index, row]));
    entry.posters.forEach((poster, index) => {
      const row = byIndex.get(index);
      if (!row || row.status === "pending") this.settle(poster, { state: "cancelled" });
      else if (row.status === "error") this.settle(poster, { state: "error", error: row.error });
      else this.settle(poster, { state: "ok", genres: row.genres, scores: row.scores });
    });
    entry.collected = true;
    this.view.collected(this);
  }
}
