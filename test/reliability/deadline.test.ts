/**
 * The relay handler against a bridge that stops answering at one phase of the gateway session: the CONNACK, the
 * SUBACK of the errors subscription, the PUBACKs of the attaches, of the publishes, or of the detaches never come.
 * Whatever the phase, the handler returns before Lambda's deadline (context.getRemainingTimeInMillis()) and fails
 * back every record it could not confirm; none is lost, none is confirmed.
 *
 * Two bridges: an intercepting proxy in front of the emulator that withholds the answers of any phase, and the
 * emulator's own `withholdPuback` fault for the three phases that are PUBLISHes.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator, type Phase } from '../../emulator/index.js';
import { eventually, type Fleet } from '../helpers/emulator-fixtures.js';
import { eventBody, GW, lambdaContext, makeRelayFleet, PUMPS, sqsEvent, sqsRecord, stateBody } from '../helpers/relay-fixtures.js';
import { captureOutput } from '../helpers/captured-output.js';
import { startInterceptingProxy, type InterceptingProxy } from './mqtt-intercepting-proxy.js';
import { startRelayHandler, type RelayHandlerHarness } from './relay-handler-harness.js';

/** What Lambda grants the invocation, and what the relay keeps back from it for the SQS calls and the answer. */
const REMAINING_MS = 2_000;
const MARGIN_MS = 400;

let fleet: Fleet;
let emulator: Emulator;
let proxy: InterceptingProxy;
let viaProxy: RelayHandlerHarness;
let direct: RelayHandlerHarness;

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  proxy = await startInterceptingProxy(emulator);
  // The relay's own timeouts (5 s by default) are longer than the invocation: only the deadline can stop it.
  const env = { RELAY_DEADLINE_MARGIN_MS: String(MARGIN_MS), POWERTOOLS_METRICS_DISABLED: 'true' };
  const logger = new Logger({ serviceName: 'iotcore-relay', logLevel: 'INFO' });
  viaProxy = await startRelayHandler({ fleet, bridge: proxy, env, logger });
  direct = await startRelayHandler({ fleet, bridge: emulator, env, logger });
});
afterEach(() => {
  proxy.stallAt = undefined;
  emulator.clearFaults();
});
afterAll(async () => {
  await viaProxy?.close();
  await direct?.close();
  await proxy?.close();
  await emulator?.close();
});

/** The session phase a stall at each bridge phase leaves the gateway session in when the deadline comes. */
const SESSION_PHASE: Record<Phase, string | undefined> = {
  connect: 'connecting',
  subscribe: 'subscribing',
  attach: 'attaching',
  publish: 'publishing',
  // The work is done by then: only the final barrier is missing, which the session reports per record.
  detach: undefined,
};

/** The emulator's topic filters for the PUBLISHes of each phase. */
const WITHHELD = {
  attach: ['/devices/+/attach'],
  publish: ['/devices/+/events', '/devices/+/events/#', '/devices/+/state'],
  detach: ['/devices/+/detach'],
};

async function invokeStalled(relay: RelayHandlerHarness): Promise<{ elapsedMs: number; failedBack: string[]; sent: string[]; sessions: Record<string, unknown>[] }> {
  const records = [
    sqsRecord(eventBody(PUMPS[0]!, { subfolder: 'alarms' }), { groupId: GW.assoc }),
    sqsRecord(stateBody(PUMPS[1]!), { groupId: GW.assoc }),
    sqsRecord(eventBody('east-01'), { groupId: GW.east }),
  ];
  const output = captureOutput();
  const started = Date.now();
  let response;
  try {
    response = await relay.handler(sqsEvent(records), lambdaContext(REMAINING_MS));
  } finally {
    output.restore();
  }
  const elapsedMs = Date.now() - started;
  return {
    elapsedMs,
    failedBack: response.batchItemFailures.map((f) => f.itemIdentifier).sort(),
    sent: records.map((r) => r.messageId).sort(),
    sessions: output.jsonLines().filter((l) => l.message === 'gateway session ended early' || l.message === 'gateway session'),
  };
}

describe('a bridge that stops answering at one phase', () => {
  it.each(['connect', 'subscribe', 'attach', 'publish', 'detach'] as const)(
    'withholding every %s answer: the handler returns before the deadline and fails every record back',
    async (phase) => {
      proxy.stallAt = phase;
      const withheldBefore = proxy.withheld.length;

      const run = await invokeStalled(viaProxy);

      // The stall happened: the bridge did answer, and the proxy kept the answers from the relay.
      expect(proxy.withheld.length).toBeGreaterThan(withheldBefore);
      expect(run.elapsedMs).toBeLessThan(REMAINING_MS);
      expect(run.failedBack).toEqual(run.sent);
      expect(run.sessions).toHaveLength(2);
      for (const s of run.sessions) {
        if (SESSION_PHASE[phase] === undefined) {
          expect(s.failureCode).toBeUndefined();
          expect(s.confirmed).toBe(0);
        } else {
          expect(s).toMatchObject({ failureCode: 'ERR_DEADLINE', failurePhase: SESSION_PHASE[phase], confirmed: 0 });
        }
      }
      // Nothing is left open on the bridge once the handler has returned.
      await eventually(() => proxy.openLinks() === 0, 1_000, 'a connection stayed open');
    },
  );

  it.each(['attach', 'publish', 'detach'] as const)(
    "with the emulator's own withheld PUBACKs at %s: the same, straight to the bridge",
    async (phase) => {
      emulator.setFaults({ withholdPuback: WITHHELD[phase] });

      const run = await invokeStalled(direct);

      expect(run.elapsedMs).toBeLessThan(REMAINING_MS);
      expect(run.failedBack).toEqual(run.sent);
      expect(run.sessions.map((s) => s.confirmed)).toEqual([0, 0]);
      await eventually(() => emulator.connections().length === 0, 1_000, 'a connection stayed open');
    },
  );
});
