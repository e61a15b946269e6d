// Opens a loadgen report.html from disk in headless Chromium and prints what a reader
// would see, as one JSON object on stdout, for tests/cli_report.rs to judge:
//   {"console": [...errors], "requests": [...urls other than the page],
//    "plots": {"search-linear-0.02": {"points": 7, "lines": 0}, ...} (drawn per plot),
//    "screenshot": {"width", "height", "inked": fraction of non-white pixels,
//                   "colours": distinct colours seen}}
// Usage: node report_check.mjs REPORT.html SCREENSHOT.png
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), started with the flags that
// keep it off the network it cannot reach here (playwright gives it a fresh profile).
import { chromium } from "playwright-core";
import { PNG } from "pngjs";
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [page_path, shot_path] = process.argv.slice(2);
if (!page_path || !shot_path) {
  console.error("usage: node report_check.mjs REPORT.html SCREENSHOT.png");
  process.exit(2);
}
const url = pathToFileURL(resolve(page_path)).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleErrors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("request", (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  const response = await page.goto(url, { waitUntil: "load" });
  const plots = await page.$$eval("figure[data-plot]", (figs) =>
    Object.fromEntries(figs.map((f) => [f.dataset.plot, {
      points: f.querySelectorAll("circle.pt").length,
      lines: f.querySelectorAll("polyline.ln").length,
    }])));
  const visible = await page.$$eval("figure[data-plot] svg", (svgs) =>
    svgs.every((s) => s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 100));
  const shot = await page.screenshot({ fullPage: false });
  writeFileSync(shot_path, shot);
  const png = PNG.sync.read(readFileSync(shot_path));
  let inked = 0;
  const colours = new Set();
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
    if (r < 250 || g < 250 || b < 250) inked++;
    if (colours.size < 1000) colours.add((r << 16) | (g << 8) | b);
  }
  const result = {
    loaded: response === null || response.ok(),
    console: consoleErrors,
    requests,
    plots,
    visible,
    screenshot: {
      width: png.width,
      height: png.height,
      inked: inked / (png.width * png.height),
      colours: colours.size,
    },
  };
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
