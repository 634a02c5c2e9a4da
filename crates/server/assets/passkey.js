// The challenge page's passkeys (served as /challenge/passkey.js under the page's own
// content security policy): "use your passkey" asks the browser for an assertion and sends
// it to be verified, then shows the page again with the result; "create a passkey" after a
// passed challenge registers one for the card. The options and results travel as WebAuthn's
// JSON forms (base64url), converted by the browser.
(function () {
  'use strict';
  const status = document.getElementById('passkey-status');
  const say = (text) => { if (status) status.textContent = text; };
  async function post(path, body) {
    const r = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((answer.error && answer.error.message) || String(r.status));
    return answer;
  }
  const supported = typeof PublicKeyCredential !== 'undefined'
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function';
  const create = document.getElementById('create-passkey');
  if (create) {
    create.hidden = !supported;
    create.addEventListener('click', async () => {
      const t = create.dataset.t;
      create.disabled = true;
      try {
        const options = await post('/challenge/passkey/register/start', { t });
        const credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
        });
        await post('/challenge/passkey/register/finish', { t, credential: credential.toJSON() });
        say(create.dataset.done);
      } catch (e) {
        create.disabled = false;
        say(create.dataset.failed);
      }
    });
  }
  const use = document.getElementById('use-passkey');
  if (use) {
    use.hidden = !supported;
    use.addEventListener('click', async () => {
      const t = use.dataset.t;
      use.disabled = true;
      try {
        const options = await post('/challenge/passkey/auth/start', { t });
        const credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
        });
        await post('/challenge/passkey/auth/finish', { t, credential: credential.toJSON() });
        window.location.reload();
      } catch (e) {
        use.disabled = false;
        say(use.dataset.failed);
      }
    });
  }
})();
