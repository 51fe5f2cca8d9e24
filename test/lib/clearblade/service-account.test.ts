import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEndpointUrl, isLoopbackHost, parseServiceAccount, readServiceAccount } from '../../../lib/clearblade/service-account.js';
import { rejectedRelayError, thrownRelayError } from '../../helpers/relay-error.js';

const doc = { systemKey: 'abc123', token: 'tok-SECRET', url: 'https://iot.clearblade.com/', project: 'my-project' };
const refusal = (text: string): string => thrownRelayError(() => parseServiceAccount(text, 'sa.json'), 'ERR_CONFIG').message;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'service-account-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseServiceAccount', () => {
  it('reads the console download, trimmed, the URL without its trailing slash', () => {
    expect(parseServiceAccount(JSON.stringify(doc), 'sa.json')).toEqual({ ...doc, url: 'https://iot.clearblade.com' });
    expect(parseServiceAccount(JSON.stringify({ ...doc, systemKey: ' abc123 ', token: ' tok ', project: undefined }), 'sa.json')).toEqual({
      systemKey: 'abc123',
      token: 'tok',
      url: 'https://iot.clearblade.com',
      project: undefined,
    });
  });

  it('refuses plain http except to this machine, and never quotes the token', () => {
    expect(refusal(JSON.stringify({ ...doc, url: 'http://iot.example.com' }))).toMatch(/must be https/);
    expect(parseServiceAccount(JSON.stringify({ ...doc, url: 'http://127.0.0.1:8081' }), 'sa.json').url).toBe('http://127.0.0.1:8081');
    for (const bad of [{ ...doc, token: '' }, { ...doc, token: 7 }, { ...doc, systemKey: 'a/b' }, { ...doc, url: 'ftp://x' }, [doc]]) {
      const message = refusal(JSON.stringify(bad));
      expect(message).toMatch(/^service account sa.json/);
      expect(message).not.toContain('tok-SECRET');
    }
    expect(refusal('{"token": "tok-SECRET", ')).toBe('service account sa.json: is not JSON');
  });

  it.each([
    ['a list', [doc], 'service account sa.json: must be a JSON object (got an array)'],
    ['no system key', { ...doc, systemKey: undefined }, 'service account sa.json: needs a non-empty string "systemKey" (got nothing)'],
    ['an empty token', { ...doc, token: ' ' }, 'service account sa.json: needs a non-empty string "token"'],
    ['a URL that is a number', { ...doc, url: 5 }, 'service account sa.json: needs a non-empty string "url" (got 5)'],
    ['an empty project', { ...doc, project: '' }, 'service account sa.json: "project" must be a string (got "")'],
    ['a system key with a slash', { ...doc, systemKey: 'a/b' }, 'service account sa.json: "systemKey" must be letters, digits, - and _'],
    ['a URL with a password', { ...doc, url: 'https://u:p@iot.clearblade.com' }, 'service account sa.json: "url" must not carry a user name or password'],
  ])('refuses %s', (_what, value, message) => {
    expect(refusal(JSON.stringify(value))).toBe(message);
  });
});

describe('checkEndpointUrl', () => {
  it('returns the URL without a trailing slash', () => {
    expect(checkEndpointUrl(' https://iot.clearblade.com/api/// ', 'x')).toBe('https://iot.clearblade.com/api');
    expect(checkEndpointUrl('http://[::1]:80/', 'x')).toBe('http://[::1]');
    expect(checkEndpointUrl('http://localhost:8081', 'x')).toBe('http://localhost:8081');
  });

  it.each([
    ['', 'x must be a URL (got "")'],
    [undefined, 'x must be a URL (got nothing)'],
    ['iot.clearblade.com', 'x is not a URL (got "iot.clearblade.com")'],
    ['https://iot.clearblade.com/?a=1', 'x must not have a query or fragment'],
    ['https://iot.clearblade.com/#top', 'x must not have a query or fragment'],
    ['http://10.0.0.1', 'x must be https (plain http only to this machine, as the local emulator serves it); got http://10.0.0.1'],
    ['ftp://iot.clearblade.com', 'x must be an https URL (got ftp:)'],
  ])('refuses %j', (raw, message) => {
    expect(thrownRelayError(() => checkEndpointUrl(raw, 'x'), 'ERR_CONFIG').message).toBe(message);
  });
});

describe('isLoopbackHost', () => {
  it('is this machine only', () => {
    expect(['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '[::1]', '::1'].map(isLoopbackHost)).toEqual([true, true, true, true, true, true]);
    expect(['128.0.0.1', '127.0.0.1.example.com', 'localhost.example.com', '10.0.0.1', '[::2]'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
  });
});

describe('readServiceAccount', () => {
  it('reads the file', async () => {
    const file = join(dir, 'sa.json');
    writeFileSync(file, JSON.stringify(doc));
    await expect(readServiceAccount(file)).resolves.toMatchObject({ systemKey: 'abc123', project: 'my-project' });
  });

  it('names a file it cannot read, and the file in the refusals of its content', async () => {
    const missing = join(dir, 'missing.json');
    expect((await rejectedRelayError(readServiceAccount(missing), 'ERR_CONFIG')).message).toBe(`service account ${missing} cannot be read: ENOENT`);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{');
    expect((await rejectedRelayError(readServiceAccount(broken), 'ERR_CONFIG')).message).toBe(`service account ${broken}: is not JSON`);
  });
});
