/**
 * The credentials of ClearBlade's REST form: the project's service account (what ClearBlade's console downloads as
 * a JSON file: `systemKey`, `token`, `url`, `project`), and each registry's regional credentials, which
 * getRegistryCredentials hands out for the service account's token. All are random, made when the emulator starts
 * (a registry's on first request) and valid until it stops; `url` is the emulator's admin URL, which serves both the
 * project's and the registries' routes.
 *
 * @example
 * const creds = new ClearBladeCredentials('demo-project');
 * creds.url = 'http://127.0.0.1:8080';
 * await writeServiceAccountFile('.local/clearblade-service-account.json', creds.serviceAccount());
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { open } from 'node:fs/promises';

/** The service-account JSON file of a ClearBlade project. */
export interface ServiceAccount {
  systemKey: string;
  token: string;
  url: string;
  project: string;
}

/** What getRegistryCredentials answers: where the registry's device manager is, and its token. */
export interface RegistryCredentials {
  systemKey: string;
  serviceAccountToken: string;
  url: string;
}

/** 30 hex digits, the shape of ClearBlade's system keys. */
const newSystemKey = (): string => randomBytes(15).toString('hex');
const newToken = (): string => randomBytes(48).toString('base64url');

/** Compares a presented token with the expected one in constant time (for equal lengths). */
export function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class ClearBladeCredentials {
  readonly project: string;
  readonly systemKey = newSystemKey();
  readonly token = newToken();
  /** The admin URL; set once the admin server listens. */
  url = '';
  readonly #byRegistry = new Map<string, { systemKey: string; serviceAccountToken: string }>();
  readonly #registryOfKey = new Map<string, string>();

  constructor(project: string) {
    this.project = project;
  }

  serviceAccount(): ServiceAccount {
    return { systemKey: this.systemKey, token: this.token, url: this.url, project: this.project };
  }

  /** A registry's regional credentials, the same on every call. */
  forRegistry(registryId: string): RegistryCredentials {
    let c = this.#byRegistry.get(registryId);
    if (c === undefined) {
      c = { systemKey: newSystemKey(), serviceAccountToken: newToken() };
      this.#byRegistry.set(registryId, c);
      this.#registryOfKey.set(c.systemKey, registryId);
    }
    return { ...c, url: this.url };
  }

  /** The registry whose regional system key this is, once its credentials were handed out. */
  registryOfKey(systemKey: string): string | undefined {
    return this.#registryOfKey.get(systemKey);
  }
}

/**
 * Writes a service-account file readable by its owner only (0600), as the console's download should be kept: the
 * file is truncated and its mode set before the token is written into it.
 */
export async function writeServiceAccountFile(file: string, account: ServiceAccount): Promise<void> {
  const handle = await open(file, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(`${JSON.stringify(account, null, 2)}\n`);
  } finally {
    await handle.close();
  }
}
