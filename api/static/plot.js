// Posters per second over the last hour as an inline SVG bar chart: drawn here, nothing from another host.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 160;
// Drawn at the width it is shown at, so that its labels are the page's size on a phone as on a desktop.
const widthOf = (chart) => Math.max(300, Math.round(chart.getBoundingClientRect().width) || 900);
const LEFT = 40; // room for the y axis' labels
const BOTTOM = 18; // room for the x axis' labels
const TOP = 8;

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** A round upper bound for the y axis, at least 1 poster/s. */
function ceiling(peak) {
  const step = 10 ** Math.floor(Math.log10(Math.max(peak, 1)));
  return Math.ceil(Math.max(peak, 1) / step) * step;
}

/**
 * Draw `series` ([{at, posters_per_second}], oldest first, one per minute) into the <svg> `chart`;
 * returns a sentence that says what the plot shows, for its accessible name.
 */
export function drawThroughput(chart, series) {
  const width = widthOf(chart);
  chart.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
  const rates = series.map((point) => point.posters_per_second);
  const peak = Math.max(0, ...rates);
  const top = ceiling(peak);
  const plotWidth = width - LEFT;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const slot = plotWidth / Math.max(1, rates.length);
  const nodes = [
    svg("line", { class: "plot-axis", x1: LEFT, y1: TOP + plotHeight, x2: width, y2: TOP + plotHeight }),
    svg("line", { class: "plot-grid", x1: LEFT, y1: TOP, x2: width, y2: TOP }),
    svg("text", { class: "plot-label", x: LEFT - 4, y: TOP + 4, "text-anchor": "end" }, String(top)),
    svg("text", { class: "plot-label", x: LEFT - 4, y: TOP + plotHeight, "text-anchor": "end" }, "0"),
    svg("text", { class: "plot-label", x: LEFT, y: HEIGHT - 4 }, "60 min ago"),
    svg("text", { class: "plot-label", x: width, y: HEIGHT - 4, "text-anchor": "end" }, "now"),
  ];
  rates.forEach((rate, index) => {
    const height = (rate / top) * plotHeight;
    if (height <= 0) return;
    const bar = svg("rect", {
      class: "plot-bar", x: (LEFT + index * slot + 0.5).toFixed(1), y: (TOP + plotHeight - height).toFixed(1),
      width: Math.max(1, slot - 1).toFixed(1), height: Math.max(0.5, height).toFixed(1),
    });
    bar.append(svg("title", {}, `${new Date(series[index].at * 1000).toLocaleTimeString("en")}: `
      + `${rate.toFixed(2)} posters/s`));
    nodes.push(bar);
  });
  chart.replaceChildren(...nodes);
  chart.dataset.peak = String(peak);
  const now = rates.length ? rates[rates.length - 1] : 0;
  return `Posters per second, minute by minute over the last hour: at most ${peak.toFixed(1)}, `
    + `${now.toFixed(1)} in the minute under way.`;
}
