/**
 * The session against the connection-level variants of the bridge: the maximum connection lifetime, an empty
 * username accepted or refused, a Will accepted, published or refused, and a JWT allowed 24 h or 24 h plus the
 * skew. The relay sends the username `unused`, no Will, and a JWT it signs with the lifetime of its settings, so
 * it works under each; a session outliving the connection's lifetime sends what it had not confirmed back.
 * (Command resends and the config update rate do not concern it: it neither subscribes to commands nor writes configs.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Emulator, EmulatorOptions } from '../../../emulator/index.js';
import { MAX_JWT_LIFETIME_SECONDS } from '../../../lib/iotcore/limits.js';
import { signGatewayJwt } from '../../../lib/jwt.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { eventBody, GW, makeRelayFleet, outcomeOf, PUMPS, record, runSession, stateBody, VALVES, variantEmulator } from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeRelayFleet();
});

const variant = (options: EmulatorOptions): (() => Emulator) => variantEmulator(() => fleet, options);

/** The gateway's JWT as the relay signs it, for the longest lifetime its settings allow (24 h). */
function relayJwt(lifetimeSeconds = MAX_JWT_LIFETIME_SECONDS): Promise<string> {
  const key = fleet.keys[GW.assoc]!;
  return signGatewayJwt({ key: key.pair.keys.privateKey, alg: key.alg, project: fleet.project, lifetimeSeconds });
}

/** A small batch over three devices, confirmed in full when the variant leaves the relay's CONNECT alone. */
async function expectDelivered(emulator: Emulator, first: number): Promise<void> {
  const records = [record(eventBody(PUMPS[first]!)), record(stateBody(PUMPS[first + 1]!)), record(eventBody(VALVES[first]!))];
  const run = await runSession(emulator, fleet, GW.assoc, records, { options: { jwt: await relayJwt() } });
  expect(run.report.failure).toBeUndefined();
  expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed', 'confirmed']);
}

describe('connectionLifetimeSeconds 1 (the bridge closes a connection 1 s after it opened)', () => {
  const emulator = variant({ connectionLifetimeSeconds: 1 });

  it('a session within the lifetime delivers its batch', async () => {
    await expectDelivered(emulator(), 0);
  });

  it('a session outliving it loses the connection; what was not confirmed goes back, acknowledged or not', async () => {
    emulator().setFaults({ withholdPuback: [`/devices/${VALVES[4]}/events`] });
    const early = record(eventBody(VALVES[5]!));
    const held = record(eventBody(VALVES[4]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [early, held], {
      options: { pubackTimeoutMs: 4000, deadline: Date.now() + 6000 },
    });
    emulator().clearFaults();
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'publishing' });
    expect(outcomeOf(run, held)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    expect(outcomeOf(run, early)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    expect(run.elapsedMs).toBeLessThan(4000);
  });
});

describe("emptyUsername 'accept' (the bridge ignores the username altogether)", () => {
  const emulator = variant({ emptyUsername: 'accept' });
  it('the relay, which sends `unused`, delivers all the same', async () => {
    await expectDelivered(emulator(), 2);
  });
});

describe("emptyUsername 'refuse' (the default, stated here as the variant it is)", () => {
  const emulator = variant({ emptyUsername: 'refuse' });
  it('the relay, which sends `unused`, is never refused for it', async () => {
    await expectDelivered(emulator(), 3);
  });
});

for (const willMessage of ['accept', 'publish'] as const) {
  describe(`willMessage '${willMessage}'`, () => {
    const emulator = variant({ willMessage });
    it('the relay sends no Will, delivers, and leaves nothing to publish when its connection ends', async () => {
      const before = emulator().registry.events.length;
      await expectDelivered(emulator(), willMessage === 'accept' ? 4 : 5);
      expect(emulator().registry.events.length).toBe(before + 2);
    });
  });
}

describe("jwtLifetime 'strict' and 'with-skew'", () => {
  const strict = variant({ jwtLifetime: 'strict' });
  const lenient = variant({ jwtLifetime: 'with-skew' });

  it('a relay JWT of the longest lifetime its settings allow (24 h) is accepted by both', async () => {
    await expectDelivered(strict(), 6);
    await expectDelivered(lenient(), 7);
  });

  it('one over 24 h is a credential failure under strict only', async () => {
    // The relay's own signer refuses to make one (IOTCORE_JWT_LIFETIME_MINUTES stops at 1440): signed here.
    const jwt = await fleet.jwt(GW.assoc, { lifetimeSeconds: MAX_JWT_LIFETIME_SECONDS + 60 });
    const r = record(eventBody(PUMPS[9]!));
    const refused = await runSession(strict(), fleet, GW.assoc, [r], { options: { jwt } });
    expect(refused.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED_AUTH' });
    expect(outcomeOf(refused, r)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_CONNECT_REFUSED_AUTH' });
    const accepted = await runSession(lenient(), fleet, GW.assoc, [r], { options: { jwt } });
    expect(outcomeOf(accepted, r).outcome).toBe('confirmed');
  });
});
