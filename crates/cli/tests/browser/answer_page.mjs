// The cardholder's answer page in a real browser (Debian's Chromium, headless, driven by
// playwright-core; no browser is downloaded): opens the link of an alert, takes a
// screenshot, presses the page's one button, takes another, and prints what it saw as JSON.
// Usage: node answer_page.mjs URL SCREENSHOT_DIR
const playwright = process.env.CARDGUARD_PLAYWRIGHT;
const { chromium } = await import(`${playwright}/index.mjs`);
const [url, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CARDGUARD_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 480, height: 720 } });
  const opened = await page.goto(url);
  await page.screenshot({ path: `${shots}/answer-page.png`, fullPage: true });
  const before = await page.innerText('body');
  const buttons = await page.locator('button').count();
  await Promise.all([page.waitForNavigation(), page.click('button')]);
  await page.screenshot({ path: `${shots}/answered.png`, fullPage: true });
  const after = await page.innerText('body');
  console.log(JSON.stringify({
    status: opened.status(),
    lang: await page.getAttribute('html', 'lang'),
    buttons,
    before,
    after,
    url: page.url(),
  }));
} finally {
  await browser.close();
}
