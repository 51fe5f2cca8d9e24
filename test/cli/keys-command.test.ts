import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysCommand, type CommandOutput } from '../../cli/keys-command.js';
import { signGatewayJwt } from '../../lib/jwt.js';
import { FileKeySource } from '../../lib/keys/file-key-source.js';
import { keyEntryFor } from '../../lib/keys/key-document.js';
import { importSigningKey } from '../../lib/keys/signing-key.js';

let root: string;
let dirSeq = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'iotcore-relay-keys-cli-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CommandOutput = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const code = await keysCommand(argv, io);
  return { code, stdout, stderr };
}

function freshDir(): string {
  return join(root, `out-${++dirSeq}`);
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const spki = (pem: string): string => createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();

/** The PEM blocks of a text, in order. */
function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z ]+)-----\n[\s\S]*?\n-----END \1-----\n/g)].map((m) => m[0]);
}

describe('iotcore-relay keys --out', () => {
  it('writes an ES256 pair by default: PKCS#8 private key 0600, public key 0644, and prints the public key as ES256_PEM', async () => {
    const out = freshDir();
    const r = await run('--out', out, '--name', 'gw-1');
    expect(r.code).toBe(0);

    const privatePath = join(out, 'gw-1_private.pem');
    const publicPath = join(out, 'gw-1_public.pem');
    expect((await readdir(out)).sort()).toEqual(['gw-1_private.pem', 'gw-1_public.pem']);
    expect(await mode(privatePath)).toBe(0o600);
    expect(await mode(publicPath)).toBe(0o644);
    expect(await mode(out)).toBe(0o700);

    const privatePem = await readFile(privatePath, 'utf8');
    const publicPem = await readFile(publicPath, 'utf8');
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const privateKey = createPrivateKey(privatePem);
    expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    // The public file is the public half of the private file.
    expect(spki(privatePem)).toBe(publicPem);

    expect(r.stdout).toBe(`format: ES256_PEM\n${publicPem}`);
    expect(r.stdout).not.toContain('PRIVATE KEY');
    expect(r.stderr).toContain(`wrote ${privatePath} (private key, PKCS#8, mode 0600)`);
    expect(r.stderr).not.toContain('PRIVATE KEY-----');
  });

  it('writes an RS256 pair with a self-signed certificate, printing RSA_PEM and RSA_X509_PEM', async () => {
    const out = freshDir();
    const r = await run('--alg', 'RS256', '--x509', '--days', '30', '--out', out, '--name', 'gw-rsa');
    expect(r.code).toBe(0);

    const privatePem = await readFile(join(out, 'gw-rsa_private.pem'), 'utf8');
    const publicPem = await readFile(join(out, 'gw-rsa_public.pem'), 'utf8');
    const certPem = await readFile(join(out, 'gw-rsa_cert.pem'), 'utf8');
    const privateKey = createPrivateKey(privatePem);
    expect(privateKey.asymmetricKeyType).toBe('rsa');
    expect(privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const cert = new X509Certificate(certPem);
    expect(cert.subject).toBe('CN=gw-rsa');
    expect(cert.issuer).toBe('CN=gw-rsa');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(publicPem);
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(Math.round(days)).toBe(30);

    const [publicBlock, certBlock] = pemBlocks(r.stdout);
    expect(publicBlock).toBe(publicPem);
    expect(certBlock).toBe(certPem.endsWith('\n') ? certPem : `${certPem}\n`);
    expect(r.stdout).toMatch(/^format: RSA_PEM\n-----BEGIN PUBLIC KEY-----/);
    expect(r.stdout).toContain('\nformat: RSA_X509_PEM\n-----BEGIN CERTIFICATE-----');
    expect(r.stdout).not.toContain('PRIVATE KEY');

    // The written key is one the relay accepts, and signs tokens the printed public key verifies.
    const signing = await importSigningKey(privatePem, { origin: 'test' });
    expect(signing.alg).toBe('RS256');
    const token = await signGatewayJwt({ ...signing, project: 'demo-project' });
    await expect(jwtVerify(token, createPublicKey(publicBlock!), { audience: 'demo-project' })).resolves.toBeTruthy();
  });

  it('refuses to overwrite existing files and writes nothing; --force replaces them with mode 0600 again', async () => {
    const out = freshDir();
    expect((await run('--out', out, '--name', 'gw-1')).code).toBe(0);
    const privatePath = join(out, 'gw-1_private.pem');
    const original = await readFile(privatePath, 'utf8');
    // A private key file someone made readable: --force must not keep that mode.
    await chmod(privatePath, 0o644);

    const refused = await run('--out', out, '--name', 'gw-1', '--x509');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`refusing to overwrite ${privatePath}, ${join(out, 'gw-1_public.pem')}`);
    expect(refused.stderr).toContain('--force');
    expect(refused.stdout).toBe('');
    expect(await readFile(privatePath, 'utf8')).toBe(original);
    // Not even the certificate, which did not exist yet.
    expect((await readdir(out)).sort()).toEqual(['gw-1_private.pem', 'gw-1_public.pem']);

    const forced = await run('--out', out, '--name', 'gw-1', '--force');
    expect(forced.code).toBe(0);
    const replaced = await readFile(privatePath, 'utf8');
    expect(replaced).not.toBe(original);
    expect(await mode(privatePath)).toBe(0o600);
    expect(spki(replaced)).toBe(await readFile(join(out, 'gw-1_public.pem'), 'utf8'));
  });

  it('refuses when any one target exists, even a file the run would add', async () => {
    const out = freshDir();
    expect((await run('--out', out, '--name', 'gw-2')).code).toBe(0);
    await rm(join(out, 'gw-2_private.pem'));
    await rm(join(out, 'gw-2_public.pem'));
    await writeFile(join(out, 'gw-2_secret.json'), '{}');
    const r = await run('--out', out, '--secret-json', 'gw-2');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to overwrite ${join(out, 'gw-2_secret.json')}`);
    expect(await readdir(out)).toEqual(['gw-2_secret.json']);
  });

  it('writes the Secrets Manager value for a gateway to a 0600 file, in the shape the key sources read', async () => {
    const out = freshDir();
    const r = await run('--out', out, '--secret-json', 'gw-9');
    expect(r.code).toBe(0);
    // The name defaults to the gateway ID.
    const secretPath = join(out, 'gw-9_secret.json');
    expect(await mode(secretPath)).toBe(0o600);
    const secret = JSON.parse(await readFile(secretPath, 'utf8')) as Record<string, { privateKey: string; algorithm: string }>;
    expect(Object.keys(secret)).toEqual(['gw-9']);
    expect(secret['gw-9']!.algorithm).toBe('ES256');
    expect(secret['gw-9']!.privateKey).toBe(await readFile(join(out, 'gw-9_private.pem'), 'utf8'));
    expect(r.stdout).not.toContain('PRIVATE KEY');
    expect(r.stderr).toContain(`--secret-string file://${secretPath}`);

    const key = await new FileKeySource(secretPath).signingKey('gw-9');
    expect(key.alg).toBe('ES256');
  });
});

describe('iotcore-relay keys: printing the private key', () => {
  it('prints the private key only with --print-private', async () => {
    const r = await run('--print-private');
    expect(r.code).toBe(0);
    const [publicBlock, privateBlock] = pemBlocks(r.stdout);
    expect(r.stdout).toMatch(/^format: ES256_PEM\n/);
    expect(privateBlock).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(spki(privateBlock!)).toBe(publicBlock);
  });

  it('prints the secret JSON with --secret-json and --print-private', async () => {
    const r = await run('--alg', 'ES256', '--secret-json', 'gw-1', '--print-private');
    expect(r.code).toBe(0);
    const json = r.stdout.slice(r.stdout.indexOf('{'));
    expect(r.stdout).toContain('Secrets Manager secret value for gateway gw-1:\n{');
    const entry = keyEntryFor(json, 'gw-1', 'printed secret');
    expect(entry.algorithm).toBe('ES256');
    const key = await importSigningKey(entry.pem, { origin: entry.origin, declaredAlgorithm: entry.algorithm });
    expect(key.alg).toBe('ES256');
    expect(spki(entry.pem)).toBe(pemBlocks(r.stdout)[0]);
  });

  it('refuses to run with nowhere to keep the private key', async () => {
    for (const argv of [[], ['--secret-json', 'gw-1'], ['--x509']]) {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('give --out <dir> to keep the private key in a file, or --print-private to print it');
    }
  });
});

describe('iotcore-relay keys: usage', () => {
  it('prints help with --help and -h', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run(flag);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: iotcore-relay keys \[options\]/);
      for (const option of ['--alg', '--out', '--name', '--force', '--x509', '--secret-json', '--print-private']) {
        expect(r.stdout).toContain(option);
      }
    }
  });

  it.each([
    [['--alg', 'HS256', '--print-private'], '--alg must be RS256 or ES256'],
    [['--alg', 'es256', '--print-private'], '--alg must be RS256 or ES256'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['--print-private', 'extra'], 'Unexpected argument'],
    [['--out'], "Option '--out <value>' argument missing"],
    [['--out', 'x', '--name', '../escape'], '--name must be one file name'],
    [['--out', 'x', '--name', '.hidden'], '--name must be one file name'],
    [['--print-private', '--secret-json', 'goog-gw'], '--secret-json gateway ID must not start with "goog"'],
    [['--print-private', '--secret-json', 'a/b'], '--secret-json gateway ID must start with a letter'],
    [['--print-private', '--days', '10'], '--days applies only with --x509'],
    [['--print-private', '--x509', '--days', '0'], '--days must be a whole number'],
    [['--print-private', '--force'], '--force applies only with --out'],
  ])('refuses %j with exit code 2', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('usage: iotcore-relay keys');
  });
});

describe('iotcore-relay keys through the installed bin', () => {
  it('runs from bin/iotcore-relay.mjs as a separate process', async () => {
    const out = freshDir();
    const bin = resolve(import.meta.dirname, '../../bin/iotcore-relay.mjs');
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'keys', '--out', out, '--name', 'gw-bin'], {
      timeout: 20_000,
    });
    expect(stdout).toMatch(/^format: ES256_PEM\n-----BEGIN PUBLIC KEY-----/);
    expect(await mode(join(out, 'gw-bin_private.pem'))).toBe(0o600);
    expect(spki(await readFile(join(out, 'gw-bin_private.pem'), 'utf8'))).toBe(pemBlocks(stdout)[0]);
  });
});
