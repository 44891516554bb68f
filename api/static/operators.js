// The operators' part of the dashboard: workers, posters waiting by lane and by model pool, throughput.

import { el, formatDuration, formatRate } from "./dom.js";
import { drawThroughput } from "./plot.js";

const LANES = { interactive: "Interactive lane", bulk: "Bulk lane" };

function workerRow(worker) {
  return el("tr", { "data-hostname": worker.hostname },
    el("th", { scope: "row", text: worker.hostname }),
    el("td", { text: worker.host || "—", title: worker.cpu || undefined }),
    el("td", { text: worker.model || "—" }),
    el("td", { class: "number", text: formatRate(worker.posters_per_second) }),
    el("td", { class: "number", text: `${formatDuration(worker.last_seen_s)} ago` }));
}

function waitingRows(operators) {
  // The lanes in the order batches take them (JSON objects come with their keys sorted).
  const waiting = operators.waiting_by_lane;
  const lanes = [...Object.keys(LANES).filter((lane) => lane in waiting),
    ...Object.keys(waiting).filter((lane) => !(lane in LANES))];
  const rows = lanes.map((lane) => el("tr", { "data-lane": lane },
    el("th", { scope: "row", text: LANES[lane] || lane }),
    el("td", { class: "number", text: waiting[lane].toLocaleString("en") }),
    el("td", { text: "waiting" })));
  for (const pool of operators.queued_by_pool) {
    const name = pool.pool ? `Model ${pool.pool}` : "Any model (default pool)";
    const who = pool.held ? `${pool.workers.toLocaleString("en")} worker${pool.workers === 1 ? "" : "s"} serve it`
      : "no live worker holds it";
    rows.push(el("tr", { "data-pool": pool.pool || "" },
      el("th", { scope: "row", text: name }),
      el("td", { class: "number", text: pool.queued.toLocaleString("en") }),
      el("td", { class: pool.held ? "" : "unheld", text: `queued; ${who}` })));
  }
  return rows;
}

/** Show the operators' figures in the section `section` (its parts: ids workers, waiting, plot*). */
export function showOperators(section, operators) {
  const part = (id) => section.querySelector(`#${id}`);
  part("workers").replaceChildren(...operators.workers.map(workerRow));
  part("workers-none").hidden = operators.workers.length > 0;
  part("waiting").replaceChildren(...waitingRows(operators));
  part("total-rate").textContent = `${formatRate(operators.posters_per_second)} over the last minute`;
  part("plot-summary").textContent = drawThroughput(part("plot"), operators.throughput);
}
