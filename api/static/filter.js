// The genre filter's choices: every poster, each genre found (with its count, most common first), errors.

import { el, plural } from "./dom.js";
import { ERRORS } from "./grid.js";

/** Refill the <select> from the posters' states, keeping the current choice when it still exists. */
export function fillFilter(select, posters) {
  const counts = new Map();
  let errors = 0;
  for (const poster of posters) {
    if (poster.state === "error") errors += 1;
    if (poster.state === "ok") for (const genre of poster.genres) counts.set(genre, (counts.get(genre) || 0) + 1);
  }
  const genres = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const current = select.value;
  select.replaceChildren(
    el("option", { value: "", text: `every poster (${posters.length})` }),
    ...genres.map(([genre, count]) => el("option", { value: genre, text: `${genre} (${count})` })),
    errors ? el("option", { value: ERRORS, text: `errors (${plural(errors, "poster")})` }) : null);
  select.value = [...select.options].some((option) => option.value === current) ? current : "";
}
