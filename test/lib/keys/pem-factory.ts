/**
 * Private keys in each PEM form the key sources accept, generated at test time with node:crypto, plus an assertion
 * that an error carries none of a key's material.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const generate = promisify(generateKeyPair);

export interface RsaPems {
  /** `BEGIN PRIVATE KEY`, as `openssl genpkey -algorithm RSA` writes. */
  pkcs8: string;
  /** `BEGIN RSA PRIVATE KEY`, as `openssl genrsa -traditional` writes. */
  pkcs1: string;
  publicKey: KeyObject;
}

export interface EcPems {
  pkcs8: string;
  /** `BEGIN EC PRIVATE KEY`, as `openssl ecparam -genkey -noout` writes. */
  sec1: string;
  /** `openssl ecparam -genkey` without `-noout`: an `EC PARAMETERS` block, then the SEC1 key. */
  sec1WithParameters: string;
  publicKey: KeyObject;
}

export async function rsaPems(modulusLength = 2048): Promise<RsaPems> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength });
  return {
    pkcs8: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pkcs1: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKey,
  };
}

/** The DER of the named-curve OID each curve's `EC PARAMETERS` block holds. */
const CURVE_PARAMETERS: Record<string, string> = {
  prime256v1: 'BggqhkjOPQMBBw==',
  secp384r1: 'BgUrgQQAIg==',
};

export async function ecPems(namedCurve: 'prime256v1' | 'secp384r1' = 'prime256v1'): Promise<EcPems> {
  const { privateKey, publicKey } = await generate('ec', { namedCurve });
  const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }).toString();
  return {
    pkcs8: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    sec1,
    sec1WithParameters: `-----BEGIN EC PARAMETERS-----\n${CURVE_PARAMETERS[namedCurve]}\n-----END EC PARAMETERS-----\n${sec1}`,
    publicKey,
  };
}

/** The base64 lines between a PEM's BEGIN and END lines. */
export function pemBodyLines(pem: string): string[] {
  return pem.split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

/**
 * Asserts that neither the error's message nor any message down its cause chain contains the PEM, or any
 * 16-character piece of any of its base64 lines.
 */
export function expectNoKeyMaterial(error: unknown, ...pems: string[]): void {
  const texts: string[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) texts.push(e.message, String(e.stack ?? ''));
  expect(texts.length).toBeGreaterThan(0);
  const all = texts.join('\n');
  expect(all).not.toContain('PRIVATE KEY-----');
  for (const pem of pems) {
    for (const line of pemBodyLines(pem)) {
      for (let i = 0; i + 16 <= line.length; i += 8) expect(all).not.toContain(line.slice(i, i + 16));
    }
  }
}

/** Runs `fn`, which must reject, and returns what it rejected with. */
export async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}
