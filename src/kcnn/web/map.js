// Draws a kcnn collection map (data from kcnn.maps.map_data) into an <svg>.
// Positions are in the unit square; y grows downwards, as in SVG.
const SVG_NS = "http://www.w3.org/2000/svg";

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function drawMap(svg, data, info) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", "-0.03 -0.03 1.06 1.06");
  const radius = data.points.length > 2000 ? 0.003 : 0.009;
  data.points.forEach(([x, y, group], i) => {
    const g = data.groups[group];
    const dot = svgElement("circle", {
      cx: x, cy: y, r: radius, fill: g.colour, "fill-opacity": 0.85, class: "song",
    });
    const text = `${data.names[i]} (${g.name})`;
    const title = svgElement("title", {});
    title.textContent = text;
    dot.appendChild(title);
    if (info) dot.addEventListener("mouseenter", () => { info.textContent = text; });
    svg.appendChild(dot);
  });
}

function drawLegend(element, data) {
  element.replaceChildren();
  for (const group of data.groups) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = group.colour;
    item.append(swatch, group.name);
    element.appendChild(item);
  }
}

function markQuery(svg, x, y, name) {
  svg.querySelectorAll(".query").forEach((old) => old.remove());
  const group = svgElement("g", { class: "query" });
  group.appendChild(svgElement("circle", {
    cx: x, cy: y, r: 0.022, fill: "none", stroke: "#111", "stroke-width": 0.006,
  }));
  group.appendChild(svgElement("circle", { cx: x, cy: y, r: 0.009, fill: "#111" }));
  const label = svgElement("text", {
    x: Math.min(x + 0.03, 0.8), y: y + 0.012, "font-size": 0.035, fill: "#111",
  });
  label.textContent = name;
  group.appendChild(label);
  const title = svgElement("title", {});
  title.textContent = `${name} (your song)`;
  group.appendChild(title);
  svg.appendChild(group);
}
