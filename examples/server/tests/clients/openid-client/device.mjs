// openid-client v6 as a device: the device authorization grant (RFC 8628)
// with a PKCE pair (RFC 7636) sent as extra parameters and DPoP-bound tokens
// (RFC 9449), then the protected API through openid-client's DPoP fetch.
//
//   node device.mjs ISSUER CLIENT_ID [--scope S] [--omit-verifier] [--token-file PATH]
//
// stdout carries two JSON lines: the codes a person needs (user code, the
// DPoP key's thumbprint), then the outcome (the token type as the server sent
// it and as openid-client reports it, /api/me's status and body, whether a
// refresh token came back and, if so, the same after a DPoP refresh).
// `--token-file` writes the access token last used to a new file, readable
// only by its owner, for a caller that checks the binding itself: no token is
// ever printed. `--omit-verifier` polls without the PKCE verifier, as a thief
// of the device code would. Any error: one JSON line on stderr (what failed
// and the OAuth error, never a token or a response body) and a non-zero exit
// status.

import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { calculateJwkThumbprint } from 'jose';
import * as client from 'openid-client';

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      scope: { type: 'string', default: 'profile offline_access' },
      'omit-verifier': { type: 'boolean', default: false },
      'token-file': { type: 'string' },
    },
  });
  if (positionals.length !== 2) {
    throw new TypeError('usage: device.mjs ISSUER CLIENT_ID [--scope S] [--omit-verifier] [--token-file PATH]');
  }
  const [issuer, clientId] = positionals;

  // The server publishes RFC 8414 metadata, not OpenID Connect discovery;
  // plain http is for the test's 127.0.0.1 server only.
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
    algorithm: 'oauth2',
    execute: [client.allowInsecureRequests],
  });
  // openid-client lowercases `token_type`; the server's own spelling is
  // read from the token response on the wire.
  const tokenEndpoint = config.serverMetadata().token_endpoint;
  let wireTokenType = null;
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (url === tokenEndpoint && response.ok) {
      wireTokenType = (await response.clone().json()).token_type ?? null;
    }
    return response;
  };

  const keyPair = await client.randomDPoPKeyPair();
  // openid-client's handle keeps the server's DPoP nonce and retries a
  // request refused with `use_dpop_nonce`.
  const dpop = client.getDPoPHandle(config, keyPair);
  const jkt = await calculateJwkThumbprint(keyPair.publicKey);

  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const authorization = await client.initiateDeviceAuthorization(config, {
    scope: values.scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  console.log(
    JSON.stringify({
      user_code: authorization.user_code,
      verification_uri: authorization.verification_uri,
      jkt,
    }),
  );

  const tokens = await client.pollDeviceAuthorizationGrant(
    config,
    authorization,
    values['omit-verifier'] ? {} : { code_verifier: verifier },
    { DPoP: dpop },
  );

  let access = tokens.access_token;
  const me = await callApi(config, issuer, access, dpop);
  const outcome = {
    token_type: wireTokenType,
    client_token_type: tokens.token_type,
    refresh_token: typeof tokens.refresh_token === 'string',
    me,
  };
  if (outcome.refresh_token) {
    // The refresh token is bound to the same key: openid-client proves it.
    const renewed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
      DPoP: dpop,
    });
    access = renewed.access_token;
    outcome.refreshed = {
      token_type: wireTokenType,
      me: await callApi(config, issuer, access, dpop),
    };
  }
  if (values['token-file'] !== undefined) {
    // The token last used, so the caller's checks are about a live one.
    await writeFile(values['token-file'], access, { flag: 'wx', mode: 0o600 });
  }
  console.log(JSON.stringify(outcome));
}

// GET /api/me through openid-client's DPoP fetch: its status and JSON body.
async function callApi(config, issuer, accessToken, dpop) {
  const response = await client.fetchProtectedResource(
    config,
    accessToken,
    new URL('/api/me', issuer),
    'GET',
    undefined,
    undefined,
    { DPoP: dpop },
  );
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

try {
  await main();
} catch (error) {
  // Only what identifies the failure: an error's `cause` or `response` may
  // hold a server's response body.
  const report = {
    name: error?.name ?? null,
    code: error?.code ?? null,
    message: error?.message ?? String(error),
  };
  if (error instanceof client.ResponseBodyError) {
    report.error = error.error;
    report.error_description = error.error_description ?? null;
    report.status = error.status;
  } else if (error instanceof client.WWWAuthenticateChallengeError) {
    report.status = error.status;
    report.error = error.cause?.[0]?.parameters?.error ?? null;
  }
  console.error(JSON.stringify(report));
  process.exitCode = 1;
}
