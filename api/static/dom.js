// Building DOM nodes without HTML strings: user data (file names, messages) only ever becomes text.

/** An element with properties ("class", "text", attributes, DOM properties) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** Bytes as a short human figure (1 decimal, binary units as the server counts them). */
export function formatBytes(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A score (0..1) as a percentage. */
export function percent(score) {
  return `${Math.round(score * 100)}%`;
}

/** "1 poster", "3 posters". */
export function plural(count, word) {
  return `${count.toLocaleString("en")} ${word}${count === 1 ? "" : "s"}`;
}

/** Seconds as a short human figure: "45 s", "12 min", "3.5 h", "2 d". */
export function formatDuration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(seconds < 36000 ? 1 : 0)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** Posters per second as a short figure ("—" when unknown). */
export function formatRate(rate) {
  if (rate === null || rate === undefined) return "—";
  return `${rate.toFixed(rate < 10 ? 1 : 0)}/s`;
}
