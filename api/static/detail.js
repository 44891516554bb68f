// One poster in a modal dialog: a larger thumbnail and all 24 scores, best first.

import { el, percent } from "./dom.js";
import { bar, thumbnail } from "./grid.js";

export class Detail {
  /** The <dialog> and its parts (ids detail-*). */
  constructor(dialog) {
    this.dialog = dialog;
    this.returnTo = null;
    const part = (name) => dialog.querySelector(`#detail-${name}`);
    this.name = part("name");
    this.thumb = part("thumb");
    this.summary = part("summary");
    this.scores = part("scores");
    part("close").addEventListener("click", () => dialog.close());
    // A click on the backdrop lands on the dialog itself.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      if (this.returnTo && this.returnTo.isConnected) this.returnTo.focus();
    });
  }

  /** Show a poster; focus goes back to `from` (its card) when the dialog closes. */
  open(poster, from) {
    this.returnTo = from;
    this.name.textContent = poster.name;
    this.thumb.replaceChildren(thumbnail(poster, "big"));
    const rows = poster.state === "ok"
      ? Object.entries(poster.scores).sort((a, b) => b[1] - a[1]).map(([genre, score]) => {
        const chosen = poster.genres.includes(genre);
        return el("tr", { class: chosen ? "score chosen" : "score" },
          el("th", { scope: "row" }, chosen ? el("span", { class: "chip", text: genre }) : genre),
          el("td", { class: "value", text: score.toFixed(3) }),
          el("td", {}, bar(score)));
      })
      : [];
    this.scores.replaceChildren(...rows);
    this.scores.closest("table").hidden = !rows.length;
    this.summary.replaceChildren(...this.describe(poster));
    this.dialog.showModal();
  }

  describe(poster) {
    if (poster.state === "ok") {
      const best = poster.genres.map((genre) => `${genre} (${percent(poster.scores[genre])})`).join(", ");
      return [el("strong", { text: "Genres: " }), best];
    }
    if (poster.state === "error") {
      return [el("strong", { class: "error-code", text: poster.error.code }), " ", poster.error.message];
    }
    return [poster.state === "pending" ? "Waiting for a worker." : "Cancelled before a worker took it."];
  }
}
