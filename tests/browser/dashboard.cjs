// Drives the dashboard in headless Chromium, as an operator would: node dashboard.cjs URL TOKEN
// CLIENT_KEY SCREENSHOT. The mock upstream behind the proxy rate limits key1 (sk-1). Exits 1,
// saying why, when anything the page should show does not show, or the page logs an error.
"use strict";
const { chromium } = require("playwright-core");

const [url, token, clientKey, screenshot] = process.argv.slice(2);
const chat = () =>
  fetch(url + "/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + clientKey },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "Hi" }] }),
  }).then((response) => response.status);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN, args: ["--no-sandbox"] });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
    page.on("pageerror", (error) => errors.push(error.message));
    page.setDefaultTimeout(8000);
    await page.goto(url + "/dashboard");
    await page.fill("#token", token);
    await page.click("#login button");

    const state = (key) => page.locator(`tr[data-key="cerebras/${key}"] td.state`);
    for (const key of ["key1", "key2"]) {
      await state(key).filter({ hasText: /^available$/ }).waitFor();
    }
    if ((await chat()) !== 200) throw new Error("the chat through key2 failed");
    await page.locator('p[data-stale="cerebras"]').filter({ hasText: /zai-glm-4\.7/ }).waitFor();
    await state("key1").filter({ hasText: /^resting \d+ s$/ }).waitFor();
    const before = Number((await state("key1").textContent()).match(/\d+/)[0]);
    await sleep(2100);
    const after = Number((await state("key1").textContent()).match(/\d+/)[0]);
    if (!(after < before && before <= 600)) throw new Error(`the countdown did not run: ${before} then ${after}`);
    await page.waitForFunction(() => {
      const line = document.querySelector('#chart-answers polyline[data-series="cerebras"]');
      return line && Number(line.dataset.total) >= 1 && line.getAttribute("points").includes(",");
    });
    await page.waitForFunction(() => {
      const line = document.querySelector('#chart-faults polyline[data-series="429s"]');
      return line && Number(line.dataset.total) >= 1;
    });

    const client = page.locator('tr[data-client="team"]');
    await client.locator("td.state").filter({ hasText: /^ok$/ }).waitFor();
    await client.locator("button", { hasText: "Revoke" }).click();
    await client.locator("td.state").filter({ hasText: /^revoked$/ }).waitFor();
    const revoked = Date.now();
    let status = await chat();
    while (status !== 401 && Date.now() - revoked < 2500) {
      await sleep(50);
      status = await chat();
    }
    if (status !== 401) throw new Error(`the revoked key still gets ${status}`);
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await browser.close();
  }
  if (errors.length) throw new Error("the page logged errors: " + errors.join("; "));
  console.log("dashboard: ok");
}

main().catch((error) => {
  console.error("dashboard: " + error.message);
  process.exit(1);
});
