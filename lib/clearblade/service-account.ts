/**
 * A ClearBlade IoT Core service account: the JSON file the console's project settings download ("Service accounts",
 * "Download credentials"), with the project's admin endpoint, system key and token. It is the key to every
 * device-manager call (https://docs.clearblade.com/iotcore/getregistrycredentials), so nothing here ever puts the
 * token into an error message.
 *
 * The URL must be https, except for a loopback host (the local emulator serves plain http on 127.0.0.1): a token
 * is never sent in clear text over a network.
 *
 * @example
 * const account = await readServiceAccount('service-account.json');
 * // { systemKey: '…', token: '…', url: 'https://iot.clearblade.com', project: 'my-project' }
 */
import { readFile } from 'node:fs/promises';
import { RelayError, describeInput } from '../errors.js';

export interface ServiceAccount {
  systemKey: string;
  /** Secret. */
  token: string;
  /** The admin endpoint, without a trailing slash: `https://iot.clearblade.com`. */
  url: string;
  /** The project the account belongs to; absent in some files. */
  project: string | undefined;
}

const fail = (origin: string, why: string): RelayError => new RelayError('ERR_CONFIG', `service account ${origin}: ${why}`);

/** Hosts a token may be sent to over plain http: this machine only. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Checks an endpoint URL a token will be sent to: https anywhere, http only to a loopback host. Returns it without
 * a trailing slash.
 */
export function checkEndpointUrl(raw: unknown, what: string): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new RelayError('ERR_CONFIG', `${what} must be a URL (got ${describeInput(raw)})`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new RelayError('ERR_CONFIG', `${what} is not a URL (got ${describeInput(raw)})`);
  }
  if (url.username !== '' || url.password !== '') throw new RelayError('ERR_CONFIG', `${what} must not carry a user name or password`);
  if (url.search !== '' || url.hash !== '') throw new RelayError('ERR_CONFIG', `${what} must not have a query or fragment`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new RelayError('ERR_CONFIG', `${what} must be https (plain http only to this machine, as the local emulator serves it); got ${url.origin}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RelayError('ERR_CONFIG', `${what} must be an https URL (got ${url.protocol})`);
  return url.href.replace(/\/+$/, '');
}

export function parseServiceAccount(text: string, origin: string): ServiceAccount {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message may quote the file, token included.
    throw fail(origin, 'is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw fail(origin, `must be a JSON object (got ${describeInput(doc)})`);
  const o = doc as Record<string, unknown>;
  for (const field of ['systemKey', 'token', 'url'] as const) {
    if (typeof o[field] !== 'string' || (o[field] as string).trim() === '') {
      throw fail(origin, `needs a non-empty string "${field}"${field === 'token' ? '' : ` (got ${describeInput(o[field])})`}`);
    }
  }
  if (o.project !== undefined && (typeof o.project !== 'string' || o.project.trim() === '')) {
    throw fail(origin, `"project" must be a string (got ${describeInput(o.project)})`);
  }
  const systemKey = (o.systemKey as string).trim();
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(systemKey)) throw fail(origin, '"systemKey" must be letters, digits, - and _');
  return {
    systemKey,
    token: (o.token as string).trim(),
    url: checkEndpointUrl(o.url, `service account ${origin}: "url"`),
    project: typeof o.project === 'string' ? o.project.trim() : undefined,
  };
}

export async function readServiceAccount(path: string): Promise<ServiceAccount> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `service account ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseServiceAccount(text, path);
}
