// Downloading the results: one job's file straight from the API, several jobs' merged in the browser.

import { getResultsText, hasApiKey, resultsUrl } from "./api.js";
import { el } from "./dom.js";

const TYPES = { csv: "text/csv", jsonl: "application/x-ndjson" };

/** Several jobs' CSV (one header) or JSON Lines as one text. */
export function merge(texts, format) {
  if (format !== "csv") return texts.join("");
  return texts.map((text, i) => (i === 0 ? text : text.slice(text.indexOf("\n") + 1))).join("");
}

/** Save the results of these jobs as "csv" or "jsonl". */
export async function download(jobIds, format) {
  let href = resultsUrl(jobIds[0], format);
  let blob = null;
  // A link cannot send the API key, so with a key even one job's file is fetched, then saved.
  if (jobIds.length > 1 || hasApiKey()) {
    const texts = [];
    for (const id of jobIds) texts.push(await getResultsText(id, format));
    blob = URL.createObjectURL(new Blob([merge(texts, format)], { type: TYPES[format] }));
    href = blob;
  }
  const name = jobIds.length === 1 ? `posterq-${jobIds[0]}.${format}` : `posterq-${jobIds.length}-jobs.${format}`;
  const link = el("a", { href, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  if (blob) setTimeout(() => URL.revokeObjectURL(blob), 60000);
}
