// The step-up challenge page in a real browser (Debian's Chromium, headless, driven by
// playwright-core; no browser is downloaded), at a phone's size: opens the challenge URL,
// enters a wrong code, then the right one, with a screenshot at each step, and prints what
// it saw and the device cookie the page set, as JSON. With a fifth argument `remove`, the
// cardholder then removes the device from the list the page shows.
// Usage: node challenge_page.mjs URL CODE SCREENSHOT_DIR NAME [remove]
const playwright = process.env.CARDGUARD_PLAYWRIGHT;
const { chromium } = await import(`${playwright}/index.mjs`);
const [url, code, shots, name, remove] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CARDGUARD_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await context.newPage();
  await page.goto(url);
  await page.screenshot({ path: `${shots}/${name}-open.png`, fullPage: true });
  const before = await page.innerText('body');
  const wrongCode = code === '000000' ? '111111' : '000000';
  await page.fill('#code', wrongCode);
  await Promise.all([page.waitForNavigation(), page.click('#verify')]);
  await page.screenshot({ path: `${shots}/${name}-wrong.png`, fullPage: true });
  const wrong = await page.innerText('[role=alert]');
  await page.fill('#code', code);
  await Promise.all([page.waitForNavigation(), page.click('#verify')]);
  await page.screenshot({ path: `${shots}/${name}-done.png`, fullPage: true });
  const after = await page.innerText('body');
  const status = await page.getAttribute('#result', 'data-status');
  const cookies = await context.cookies();
  const device = cookies.find((c) => c.name === 'cg_device');
  const devices = await page.innerText('#devices');
  let removed = null;
  if (remove === 'remove') {
    await Promise.all([page.waitForNavigation(), page.click('#devices button')]);
    await page.screenshot({ path: `${shots}/${name}-removed.png`, fullPage: true });
    removed = await page.locator('#devices').count();
  }
  console.log(JSON.stringify({
    lang: await page.getAttribute('html', 'lang'),
    before,
    wrong,
    after,
    status,
    cookie: device ? device.value : null,
    httpOnly: device ? device.httpOnly : null,
    devices,
    removed,
  }));
} finally {
  await browser.close();
}
