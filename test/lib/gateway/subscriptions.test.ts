import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../../lib/errors.js';
import type { SentPacket } from '../../../lib/gateway/error-correlation.js';
import { FlightClock } from '../../../lib/gateway/flights.js';
import { MqttLink } from '../../../lib/gateway/mqtt-link.js';
import { SessionLedger } from '../../../lib/gateway/session-ledger.js';
import { resubscribe, subscribeFlight, type SubscribeContext } from '../../../lib/gateway/subscriptions.js';
import { parseGatewayError } from '../../../lib/iotcore/gateway-error.js';
import { errorsTopic } from '../../../lib/iotcore/topics.js';
import { startRawMqttServer, type RawMqttServer, type RawPeer } from '../../helpers/raw-mqtt-server.js';
import { rejectedRelayError } from '../../helpers/relay-error.js';
import { until } from '../../helpers/until.js';

const soon = (what: string, check: () => boolean) => until(what, () => check() || undefined, 3000, 5);

const TOPIC = errorsTopic('gw-1');
const packet: SentPacket = { kind: 'subscribe', deviceId: 'gw-1', topic: TOPIC };

let server: RawMqttServer;
const links: MqttLink[] = [];
const clocks: FlightClock[] = [];

beforeAll(async () => {
  server = await startRawMqttServer();
});
afterEach(() => {
  for (const l of links.splice(0)) l.destroy();
  for (const c of clocks.splice(0)) c.disarm();
});
afterAll(() => server.close());

/** A session's subscribe context on a real link to the raw server. */
async function context(): Promise<SubscribeContext & { peer: RawPeer }> {
  const { socket, peer } = await server.dial();
  const link = new MqttLink(socket, { onMessage: () => undefined, onClose: () => undefined });
  links.push(link);
  const clock = new FlightClock();
  clocks.push(clock);
  return { link, ledger: new SessionLedger(), clock, peer };
}

const messageId = async (peer: RawPeer, index = 0) => ((await peer.packet('subscribe', index)) as { messageId: number }).messageId;

describe('subscribeFlight', () => {
  it('resolves on a granting SUBACK and notes the SUBSCRIBE under its packet ID', async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 1, 5000);
    const id = await messageId(c.peer);
    expect(sub.flight.end).toBeUndefined();
    c.peer.send({ cmd: 'suback', messageId: id, granted: [1] });
    await expect(sub).resolves.toBeUndefined();
    expect(sub.flight.end).toEqual({ kind: 'acked' });
    expect(sub.flight.ackedAt).toBeGreaterThanOrEqual(sub.flight.sentAt);
    expect(c.ledger.applyGatewayError(parseGatewayError(JSON.stringify({ error_type: 'UNKNOWN', mqtt_message_info: { topic: TOPIC, packet_id: id } }))!)).toEqual({ by: 'packet', packets: [packet] });
  });

  it('throws ERR_SUBSCRIBE_REJECTED on SUBACK 0x80', async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 0, 5000);
    c.peer.send({ cmd: 'suback', messageId: await messageId(c.peer), granted: [0x80] });
    const error = await rejectedRelayError(sub, 'ERR_SUBSCRIBE_REJECTED');
    expect(error.message).toBe(`the bridge refused the subscription to ${TOPIC} (SUBACK 0x80)`);
    expect(sub.flight.ackedAt).toBeUndefined();
  });

  it('throws ERR_SUBACK_TIMEOUT when no SUBACK comes in time', async () => {
    const c = await context();
    const started = Date.now();
    const error = await rejectedRelayError(subscribeFlight(c, packet, 0, 200), 'ERR_SUBACK_TIMEOUT');
    expect(error.message).toBe(`no SUBACK for ${TOPIC} within 200 ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('throws the error of an errors-topic message that names it', async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 0, 5000);
    const id = await messageId(c.peer);
    c.ledger.applyGatewayError(parseGatewayError(JSON.stringify({ error_type: 'GATEWAY_INVALID_MQTT_TOPIC', description: 'no', mqtt_message_info: { topic: TOPIC, packet_id: id } }))!);
    const error = await rejectedRelayError(sub, 'ERR_INVALID_TOPIC');
    expect(error.message).toBe('GATEWAY_INVALID_MQTT_TOPIC: no');
  });

  it("throws the session's stop", async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 0, 5000);
    sub.flight.settle({ kind: 'stopped', code: 'ERR_DEADLINE', reason: 'the invocation deadline came' });
    const error = await rejectedRelayError(sub, 'ERR_DEADLINE');
    expect(error).toBeInstanceOf(RelayError);
    expect(error.message).toBe('the invocation deadline came');
  });
});

describe('resubscribe', () => {
  it('sends the same subscription again under a new ID; the first SUBACK of either ends the flight', async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 0, 5000);
    resubscribe(c, packet, 0, sub.flight);
    const [first, second] = [await messageId(c.peer, 0), await messageId(c.peer, 1)];
    expect(first).not.toBe(second);
    c.peer.send({ cmd: 'suback', messageId: second, granted: [0] });
    await expect(sub).resolves.toBeUndefined();
    c.peer.send({ cmd: 'suback', messageId: first, granted: [0x80] });
    await soon('both SUBACKs', () => c.link.unanswered === 0);
    expect(sub.flight.end).toEqual({ kind: 'acked' });
  });

  it('keeps a refusal that came first, whatever the other SUBACK says', async () => {
    const c = await context();
    const sub = subscribeFlight(c, packet, 0, 5000);
    resubscribe(c, packet, 0, sub.flight);
    const [first, second] = [await messageId(c.peer, 0), await messageId(c.peer, 1)];
    c.peer.send({ cmd: 'suback', messageId: first, granted: [0x80] });
    c.peer.send({ cmd: 'suback', messageId: second, granted: [0] });
    await rejectedRelayError(sub, 'ERR_SUBSCRIBE_REJECTED');
    await soon('both SUBACKs', () => c.link.unanswered === 0);
    expect(sub.flight.end?.kind).toBe('refused');
  });
});

