// Passkeys on the challenge page in a real browser (Debian's Chromium, headless, driven by
// playwright-core), with the DevTools WebAuthn domain's virtual authenticator (a platform
// authenticator with user verification): passes a challenge with its code, creates a
// passkey from the success page, prints {"step": "registered", …}; then reads a second
// challenge URL from stdin, uses the passkey there and prints {"step": "done", …}.
// Screenshots at each step. Usage: node passkey_page.mjs URL CODE SCREENSHOT_DIR NAME
import readline from 'node:readline';

const playwright = process.env.CARDGUARD_PLAYWRIGHT;
const { chromium } = await import(`${playwright}/index.mjs`);
const [url, code, shots, name] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const browser = await chromium.launch({
  executablePath: process.env.CARDGUARD_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(url);
  await page.fill('#code', code);
  await Promise.all([page.waitForNavigation(), page.click('#verify')]);
  await page.screenshot({ path: `${shots}/${name}-offer.png`, fullPage: true });
  await page.click('#create-passkey');
  await page.waitForFunction(() => document.getElementById('passkey-status').textContent !== '');
  await page.screenshot({ path: `${shots}/${name}-created.png`, fullPage: true });
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  console.log(JSON.stringify({
    step: 'registered',
    message: await page.innerText('#passkey-status'),
    credentials: credentials.length,
  }));
  const next = (await lines.next()).value;
  await page.goto(next);
  await page.screenshot({ path: `${shots}/${name}-challenge.png`, fullPage: true });
  const before = await page.innerText('body');
  await Promise.all([page.waitForNavigation(), page.click('#use-passkey')]);
  await page.screenshot({ path: `${shots}/${name}-done.png`, fullPage: true });
  const device = (await context.cookies()).find((c) => c.name === 'cg_device');
  console.log(JSON.stringify({
    step: 'done',
    before,
    after: await page.innerText('body'),
    status: await page.getAttribute('#result', 'data-status'),
    cookie: device ? device.value : null,
  }));
} finally {
  await browser.close();
}
