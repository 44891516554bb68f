// The grid of posters: one card per poster (thumbnail, name, genre chips with score bars, or its error).

import { el, percent } from "./dom.js";

/** The filter value that keeps the posters that failed. */
export const ERRORS = "!errors";

/** Whether a poster passes the filter ("" every poster, ERRORS, or a genre). */
export function matches(poster, filter) {
  if (!filter) return true;
  if (filter === ERRORS) return poster.state === "error";
  return poster.state === "ok" && poster.genres.includes(filter);
}

/** A poster's thumbnail from the local file (never from the server), or a placeholder. */
export function thumbnail(poster, className) {
  const none = () => el("span", { class: `${className} none`, "aria-hidden": "true" }, "no preview");
  if (!poster.thumb) return none();
  const img = el("img", { class: className, src: poster.thumb, alt: "", loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => img.replaceWith(none()), { once: true });
  return img;
}

/** One score as a bar (the fill's width is a CSS variable, set through the CSSOM). */
export function bar(score) {
  const fill = el("span", { class: "fill" });
  fill.style.setProperty("--score", score.toFixed(4));
  return el("span", { class: "bar", "aria-hidden": "true" }, fill);
}

function body(poster) {
  if (poster.state === "ok") {
    return el("span", { class: "card-body labels" }, ...poster.genres.map((genre) => el(
      "span", { class: "label" },
      el("span", { class: "chip", text: genre }), bar(poster.scores[genre]),
      el("span", { class: "value", text: percent(poster.scores[genre]) }))));
  }
  if (poster.state === "error") {
    return el("span", { class: "card-body card-error" },
      el("span", { class: "error-code", text: poster.error.code }),
      el("span", { class: "error-message", text: poster.error.message }));
  }
  const words = { pending: "waiting for a worker", cancelled: "cancelled" };
  return el("span", { class: "card-body card-state", text: words[poster.state] || poster.state });
}

export class Grid {
  /** The grid in `list` (a <ul>); onOpen(poster, card) runs when a card is clicked or pressed. */
  constructor(list, onOpen) {
    this.list = list;
    this.posters = [];
    this.cards = [];
    list.addEventListener("click", (event) => {
      const card = event.target.closest(".card");
      if (card) onOpen(this.posters[Number(card.dataset.index)], card);
    });
  }

  /** Show these posters (all pending), dropping the previous ones and their thumbnails. */
  reset(posters) {
    for (const poster of this.posters) if (poster.thumb) URL.revokeObjectURL(poster.thumb);
    this.posters = posters;
    for (const poster of posters) {
      // A job opened from the dashboard has no local files: its cards show no preview.
      poster.thumb = poster.file && poster.file.type.startsWith("image/") ? URL.createObjectURL(poster.file) : null;
    }
    this.cards = posters.map((poster) => el(
      "button", { type: "button", class: "card", "data-index": poster.index, "data-state": poster.state },
      thumbnail(poster, "thumb"),
      el("span", { class: "card-name", text: poster.name, title: poster.name }),
      body(poster)));
    this.list.replaceChildren(...this.cards.map((card) => el("li", { class: "cell" }, card)));
  }

  /** Redraw a poster's card after its state changed. */
  update(poster) {
    const card = this.cards[poster.index];
    card.dataset.state = poster.state;
    card.querySelector(".card-body").replaceWith(body(poster));
  }

  /** Hide the cards that do not pass the filter; the number shown. */
  filter(value) {
    let shown = 0;
    this.posters.forEach((poster, index) => {
      const keep = matches(poster, value);
      this.cards[index].parentElement.hidden = !keep;
      shown += keep ? 1 : 0;
    });
    return shown;
  }
}
