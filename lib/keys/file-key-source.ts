/**
 * Gateway keys from a local file: a PEM private key, or a JSON document shaped like the Secrets Manager secret
 * (`key-document.ts`). For local runs and the emulator; the file is read once, on first use, and kept for the life
 * of the process. A failed read is not kept, so a file created after start-up is picked up by the next call.
 *
 * @example
 * const source = new FileKeySource('./keys/gateway-keys.json');
 * const { key, alg } = await source.signingKey('gw-1');
 */
import { readFile } from 'node:fs/promises';
import { RelayError } from '../errors.js';
import { keyEntryFor } from './key-document.js';
import type { KeySource } from './key-source.js';
import { importSigningKey, type SigningKey } from './signing-key.js';

export class FileKeySource implements KeySource {
  readonly path: string;
  #text: Promise<string> | undefined;

  constructor(path: string) {
    if (path.trim() === '') throw new RelayError('ERR_CONFIG', 'the key file path is empty');
    this.path = path;
  }

  async signingKey(gatewayId: string): Promise<SigningKey> {
    const entry = keyEntryFor(await this.#document(), gatewayId, `key file ${this.path}`);
    return importSigningKey(entry.pem, { origin: entry.origin, declaredAlgorithm: entry.algorithm });
  }

  #document(): Promise<string> {
    this.#text ??= readFile(this.path, 'utf8').catch((e: unknown) => {
      this.#text = undefined;
      const code = (e as { code?: unknown }).code;
      throw new RelayError(
        'ERR_KEY_UNAVAILABLE',
        `key file ${this.path} could not be read (${typeof code === 'string' ? code : String(e)})`,
        { cause: e },
      );
    });
    return this.#text;
  }
}
