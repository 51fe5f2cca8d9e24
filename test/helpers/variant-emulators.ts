/**
 * Emulators a test file starts with options of its own, one per variant, and the raw sessions it opens on them:
 * the sessions end after each test, the emulators after the file.
 *
 * @example
 * const variants = variantEmulators(() => fleet.document);
 * const e = await variants.start({ ackFailedPublish: true });
 * const raw = variants.track(await rawSession(e));
 */
import { afterAll, afterEach } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/index.js';
import type { RegistryDocument } from '../../emulator/registry.js';
import type { RawSession } from './emulator-fixtures.js';

export interface VariantEmulators {
  /** Starts an emulator over the file's registry (no admin API unless the options ask for one). */
  start(options: EmulatorOptions): Promise<Emulator>;
  /** Ends the session after the current test. */
  track(session: RawSession): RawSession;
}

/** `registry` is read at each start: the file's fleet exists only once its `beforeAll` has run. */
export function variantEmulators(registry: () => RegistryDocument): VariantEmulators {
  const emulators: Emulator[] = [];
  const sessions: RawSession[] = [];
  afterEach(() => {
    for (const s of sessions.splice(0)) s.end();
  });
  afterAll(() => Promise.all(emulators.splice(0).map((e) => e.close())));
  return {
    start: async (options) => {
      const e = await startEmulator({ registry: registry(), adminPort: null, ...options });
      emulators.push(e);
      return e;
    },
    track: (session) => {
      sessions.push(session);
      return session;
    },
  };
}
