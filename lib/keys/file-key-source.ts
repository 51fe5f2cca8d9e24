/**
 * Gateway keys from a local file: a PEM private key, or a JSON document shaped like the Secrets Manager secret
 * (`key-document.ts`). For local runs and the emulator; the file is read once, on first use, and kept for the life
 * of the process. A failed read is not kept, so a file created after start-up is picked up by the next call.
 * A path holding `{gateway}` names one file per gateway (`key-location.ts`), such as `keys/{gateway}_private.pem`
 * as `iotcore-relay keys --name <gateway>` writes them.
 *
 * @example
 * const source = new FileKeySource('./keys/gateway-keys.json');
 * const { key, alg } = await source.signingKey('gw-1');
 */
import { readFile } from 'node:fs/promises';
import { RelayError } from '../errors.js';
import { keyEntryFor } from './key-document.js';
import { keyLocation, type KeyLocation } from './key-location.js';
import type { KeySource } from './key-source.js';
import { importSigningKey, type SigningKey } from './signing-key.js';

export class FileKeySource implements KeySource {
  readonly path: string;
  readonly #location: KeyLocation;
  /** By file path: one entry, or one per gateway with a `{gateway}` path. */
  readonly #texts = new Map<string, Promise<string>>();

  constructor(path: string) {
    if (path.trim() === '') throw new RelayError('ERR_CONFIG', 'the key file path is empty');
    this.path = path;
    this.#location = keyLocation(path, 'GATEWAY_KEY_FILE');
  }

  async signingKey(gatewayId: string): Promise<SigningKey> {
    const path = this.#location.for(gatewayId);
    const entry = keyEntryFor(await this.#document(path), gatewayId, `key file ${path}`);
    return importSigningKey(entry.pem, { origin: entry.origin, declaredAlgorithm: entry.algorithm });
  }

  #document(path: string): Promise<string> {
    let text = this.#texts.get(path);
    if (text === undefined) {
      text = readFile(path, 'utf8').catch((e: unknown) => {
        this.#texts.delete(path);
        const code = (e as { code?: unknown }).code;
        throw new RelayError(
          'ERR_KEY_UNAVAILABLE',
          `key file ${path} could not be read (${typeof code === 'string' ? code : String(e)})`,
          { cause: e },
        );
      });
      this.#texts.set(path, text);
    }
    return text;
  }
}
