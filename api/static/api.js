// The posterq HTTP API, as the page uses it. Paths are relative, so the page works under a prefix.

export const FINAL = new Set(["done", "failed", "cancelled"]);
const PAGE = 1000; // the API's largest page of results
let apiKey = ""; // sent as Authorization: Bearer <key> where the server has API keys

/** Use this API key for every request from now on ("" for none). */
export function setApiKey(key) {
  apiKey = key.trim();
}

/** True when requests carry an API key. */
export function hasApiKey() {
  return apiKey !== "";
}

const withKey = (headers) => (apiKey ? { ...headers, Authorization: `Bearer ${apiKey}` } : headers);

/** An error of the API ({"error": {"code", "message"}}) or of the network (code "unreachable"). */
export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function fromBody(body, status, fallback) {
  const error = (body && body.error) || {};
  return new ApiError(error.code || `http_${status}`, error.message || fallback, status);
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: withKey(options.headers || { Accept: "application/json" }) });
  } catch {
    throw new ApiError("unreachable", "the API did not answer");
  }
  if (response.ok) return response;
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  throw fromBody(body, response.status, `${response.status} ${response.statusText}`);
}

const jobPath = (id) => `jobs/${encodeURIComponent(id)}`;

/** GET /limits. */
export async function getLimits() {
  return (await request("limits")).json();
}

/** GET /jobs/<id>: the job as soon as it is final, or after `wait` seconds as it stands. */
export async function getJob(id, { wait = 0, offset = 0, limit = 1 } = {}) {
  const query = new URLSearchParams({ wait, offset, limit });
  return (await request(`${jobPath(id)}?${query}`)).json();
}

/** Every result of a job, page by page, in submission order. */
export async function getResults(id) {
  const results = [];
  for (let offset = 0; offset !== null && offset !== undefined;) {
    const page = await getJob(id, { offset, limit: PAGE });
    results.push(...page.results);
    offset = page.next_offset;
  }
  return results;
}

/** DELETE /jobs/<id>: cancel what has not run. */
export async function cancelJob(id) {
  return (await request(jobPath(id), { method: "DELETE" })).json();
}

/** POST /jobs/<id>/retry: a new job of the failed posters only. */
export async function retryJob(id) {
  return (await request(`${jobPath(id)}/retry`, { method: "POST" })).json();
}

/** GET /dashboard: the caller's newest jobs with rate and ETA, and the operators' figures (or null). */
export async function getDashboard({ offset = 0, limit = 20 } = {}) {
  return (await request(`dashboard?${new URLSearchParams({ offset, limit })}`)).json();
}

/** The download URL of a job's results ("csv" or "jsonl"). */
export function resultsUrl(id, format) {
  return `${jobPath(id)}/results?format=${encodeURIComponent(format)}`;
}

/** The text of a job's results. */
export async function getResultsText(id, format) {
  return (await request(resultsUrl(id, format), { headers: {} })).text();
}

/**
 * POST /jobs with posters ({file, name}) as multipart `files`; XMLHttpRequest rather than fetch
 * because only it reports upload progress. Returns {promise (the job), abort()}.
 */
export function submitJob(posters, topK, onProgress) {
  const form = new FormData();
  for (const poster of posters) form.append("files", poster.file, poster.name);
  if (topK) form.append("top_k", topK);
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "jobs");
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    if (apiKey) xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.total);
    xhr.onload = () => {
      if (xhr.status === 202 && xhr.response) resolve(xhr.response);
      else reject(fromBody(xhr.response, xhr.status, `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new ApiError("unreachable", "the upload did not reach the API"));
    xhr.onabort = () => reject(new ApiError("aborted", "the upload was cancelled"));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
