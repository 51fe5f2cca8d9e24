import type { Socket } from 'node:net';
import { once } from 'node:events';
import { generate, type IPublishPacket, type ISubscribePacket, type Packet } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { RelayError } from '../../../lib/errors.js';
import { gatewayConnectFields, openGatewaySocket } from '../../../lib/gateway/connect-options.js';
import { LinkClosedError, MqttLink, type LinkClose } from '../../../lib/gateway/mqtt-link.js';
import { attachTopic, errorsTopic, eventsTopic } from '../../../lib/iotcore/topics.js';
import { makeFleet, type Fleet } from '../../helpers/emulator-fixtures.js';
import { startRawMqttServer, type RawMqttServer, type RawPeer } from '../../helpers/raw-mqtt-server.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { until } from '../../helpers/until.js';

const soon = (what: string, check: () => boolean) => until(what, () => check() || undefined, 3000, 5);

const FIELDS = { clientId: 'projects/p/locations/l/registries/r/devices/gw-1', username: 'unused', password: Buffer.from('jwt-text'), keepalive: 0, clean: true };

let server: RawMqttServer;
const opened: Socket[] = [];

beforeAll(async () => {
  server = await startRawMqttServer();
});
afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
});
afterAll(() => server.close());

interface Linked {
  link: MqttLink;
  socket: Socket;
  peer: RawPeer;
  messages: { topic: string; payload: Buffer }[];
  closes: LinkClose[];
}

/** A link on a fresh TCP connection to the raw server, and the server's side of it. */
async function linked(protocolVersion: 4 | 5 = 4): Promise<Linked> {
  const { socket, peer } = await server.dial();
  opened.push(socket);
  const messages: Linked['messages'] = [];
  const closes: LinkClose[] = [];
  const link = new MqttLink(socket, { protocolVersion, onMessage: (topic, payload) => messages.push({ topic, payload }), onClose: (why) => closes.push(why) });
  return { link, socket, peer, messages, closes };
}

/** A QoS 0 PUBLISH from the server: once the link delivers it, every byte sent before it has been read. */
async function flush(t: Linked, label = 'sync'): Promise<void> {
  const before = t.messages.length;
  t.peer.send({ cmd: 'publish', topic: `/sync/${label}`, payload: Buffer.alloc(0), qos: 0, retain: false, dup: false });
  await soon('the sync message', () => t.messages.length > before || t.closes.length > 0);
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CONNECT and pipelining', () => {
  it('writes the CONNECT fields as given, as MQTT 3.1.1', async () => {
    const t = await linked();
    void t.link.connect({ ...FIELDS, keepalive: 60 });
    const connect = await t.peer.packet('connect');
    expect(connect).toMatchObject({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: FIELDS.clientId, username: 'unused', keepalive: 60, clean: true });
    expect(Buffer.from((connect as { password: Buffer }).password).toString()).toBe('jwt-text');
    t.link.destroy();
  });

  it('sends a SUBSCRIBE right behind the CONNECT, before any CONNACK, and resolves the CONNACK as is', async () => {
    const t = await linked();
    const connack = t.link.connect(FIELDS);
    const id = t.link.subscribe('/devices/gw-1/errors', 0, () => undefined);
    const subscribe = (await t.peer.packet('subscribe')) as ISubscribePacket;
    expect(t.peer.packets.map((p) => p.cmd)).toEqual(['connect', 'subscribe']);
    expect(subscribe.messageId).toBe(id);
    expect(subscribe.subscriptions).toEqual([{ topic: '/devices/gw-1/errors', qos: 0 }]);
    t.peer.send({ cmd: 'connack', returnCode: 0, sessionPresent: true });
    await expect(connack).resolves.toEqual({ returnCode: 0, sessionPresent: true });
    t.link.destroy();
  });

  it('resolves a refusing CONNACK with its return code, leaving the meaning to the caller', async () => {
    const t = await linked();
    const connack = t.link.connect(FIELDS);
    await t.peer.packet('connect');
    t.peer.send({ cmd: 'connack', returnCode: 5, sessionPresent: false });
    await expect(connack).resolves.toEqual({ returnCode: 5, sessionPresent: false });
    t.link.destroy();
  });

  it('refuses a second CONNECT on the same link', async () => {
    const t = await linked();
    void t.link.connect(FIELDS);
    expect(thrownRelayError(() => t.link.connect(FIELDS), 'ERR_INTERNAL').message).toBe('CONNECT is sent once per link');
    t.link.destroy();
  });

  it('rejects the CONNECT with LinkClosedError when the connection closes before the CONNACK', async () => {
    const t = await linked();
    const connack = t.link.connect(FIELDS);
    await t.peer.packet('connect');
    t.peer.socket.end();
    const error = await connack.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LinkClosedError);
    expect((error as LinkClosedError).why).toEqual({ by: 'peer' });
    expect((error as LinkClosedError).message).toBe('the connection was closed');
    expect(t.closes).toEqual([{ by: 'peer' }]);
  });
});

describe('packet IDs', () => {
  it('returns the IDs that go on the wire, 1 upwards, one per packet in flight', async () => {
    const t = await linked();
    const ids = [t.link.publish('/a', Buffer.from('1'), 1), t.link.subscribe('/b', 1, () => undefined), t.link.publish('/c', Buffer.from('3'), 1)];
    expect(ids).toEqual([1, 2, 3]);
    await t.peer.packet('publish', 1);
    await t.peer.packet('subscribe');
    const onWire = t.peer.packets.map((p) => (p as { messageId?: number }).messageId);
    expect(onWire).toEqual(ids);
    expect(t.link.unanswered).toBe(3);
    t.link.destroy();
  });

  it('gives QoS 0 publishes ID 0 and takes no place for them', async () => {
    const t = await linked();
    expect(t.link.publish('/a', Buffer.from('x'), 0)).toBe(0);
    const p = (await t.peer.packet('publish')) as IPublishPacket;
    expect(p.qos).toBe(0);
    expect(p.messageId).toBeUndefined();
    expect(t.link.unanswered).toBe(0);
    t.link.destroy();
  });

  it('wraps around after 65535, skipping the IDs still unanswered and never using 0', async () => {
    const t = await linked();
    // IDs 1 and 2 stay unanswered; every other one is acknowledged as it arrives.
    const keep = new Set([1, 2]);
    t.peer.socket.on('data', () => undefined);
    let acked = 0;
    const ackAll = (): void => {
      for (; acked < t.peer.packets.length; acked++) {
        const id = (t.peer.packets[acked] as IPublishPacket).messageId!;
        if (!keep.has(id)) t.peer.send({ cmd: 'puback', messageId: id });
      }
    };
    const returned: number[] = [];
    for (let i = 0; i < 0xffff; i++) returned.push(t.link.publish('/w', Buffer.alloc(0), 1));
    expect(returned[0]).toBe(1);
    expect(returned.at(-1)).toBe(0xffff);
    await until('the PUBACKs of all but two', () => (ackAll(), t.link.unanswered === 2 || undefined), 20_000, 5);
    expect(t.peer.packets.map((p) => (p as IPublishPacket).messageId)).toEqual(returned);
    // After 65535 comes 1, then 2: both still in flight.
    expect(t.link.publish('/w', Buffer.alloc(0), 1)).toBe(3);
    expect(t.link.subscribe('/s', 0, () => undefined)).toBe(4);
    t.link.destroy();
  }, 30_000);

  it('refuses a packet when every ID is in flight', async () => {
    const t = await linked();
    const ids = new Set<number>();
    for (let i = 0; i < 0xffff; i++) ids.add(t.link.publish('/f', Buffer.alloc(0), 1));
    expect(ids.size).toBe(0xffff);
    expect(ids.has(0)).toBe(false);
    expect(thrownRelayError(() => t.link.publish('/f', Buffer.alloc(0), 1), 'ERR_INTERNAL').message).toBe('every MQTT packet ID is in flight');
    t.link.destroy();
  }, 30_000);
});

describe('acknowledgements', () => {
  it('runs a PUBACK callback once, ignoring a duplicate and an ack for an unknown ID', async () => {
    const t = await linked();
    let acks = 0;
    const id = t.link.publish('/a', Buffer.from('x'), 1, () => acks++);
    await t.peer.packet('publish');
    t.peer.send({ cmd: 'puback', messageId: id + 100 });
    await flush(t, 'unknown');
    expect(acks).toBe(0);
    expect(t.link.unanswered).toBe(1);
    t.peer.send({ cmd: 'puback', messageId: id });
    t.peer.send({ cmd: 'puback', messageId: id });
    await flush(t, 'dup');
    expect(acks).toBe(1);
    expect(t.link.unanswered).toBe(0);
    expect(t.link.isOpen).toBe(true);
    expect(t.closes).toEqual([]);
    t.link.destroy();
  });

  it('does not take a PUBACK for a SUBSCRIBE, and passes a SUBACK refusal (0x80) to the callback once', async () => {
    const t = await linked();
    const granted: number[] = [];
    const id = t.link.subscribe('/devices/gw-1/errors', 1, (g) => granted.push(g));
    await t.peer.packet('subscribe');
    t.peer.send({ cmd: 'puback', messageId: id });
    await flush(t, 'wrong-kind');
    expect(granted).toEqual([]);
    t.peer.send({ cmd: 'suback', messageId: id, granted: [0x80] });
    t.peer.send({ cmd: 'suback', messageId: id, granted: [1] });
    await flush(t, 'suback');
    expect(granted).toEqual([0x80]);
    t.link.destroy();
  });

  it('passes a granted QoS to the SUBACK callback', async () => {
    const t = await linked();
    const granted: number[] = [];
    const id = t.link.subscribe('/x', 1, (g) => granted.push(g));
    t.peer.send({ cmd: 'suback', messageId: id, granted: [1] });
    await soon('the SUBACK', () => granted.length > 0);
    expect(granted).toEqual([1]);
    t.link.destroy();
  });
});

describe('incoming messages', () => {
  it('acknowledges a QoS 1 PUBLISH itself and delivers it; a QoS 0 one is delivered without an ack', async () => {
    const t = await linked();
    t.peer.send({ cmd: 'publish', topic: '/devices/gw-1/config', payload: Buffer.from('zero'), qos: 0, retain: false, dup: false });
    t.peer.send({ cmd: 'publish', topic: '/devices/gw-1/commands', payload: Buffer.from([0, 1, 255]), qos: 1, messageId: 77, retain: false, dup: false });
    await soon('both messages', () => t.messages.length === 2);
    expect(t.messages).toEqual([
      { topic: '/devices/gw-1/config', payload: Buffer.from('zero') },
      { topic: '/devices/gw-1/commands', payload: Buffer.from([0, 1, 255]) },
    ]);
    await t.peer.packet('puback');
    await sleep(30);
    expect(t.peer.packets).toEqual([expect.objectContaining({ cmd: 'puback', messageId: 77 })]);
    t.link.destroy();
  });

  it('acknowledges a QoS 1 PUBLISH even when the handler throws', async () => {
    const { socket, peer } = await server.dial();
    const link = new MqttLink(socket, {
      onMessage: () => {
        throw new Error('handler failed');
      },
      onClose: () => undefined,
    });
    // The parser's 'packet' event runs the handler; its throw surfaces as an uncaught error unless caught here.
    const errors: unknown[] = [];
    const onUncaught = (e: unknown): void => void errors.push(e);
    process.prependListener('uncaughtException', onUncaught);
    try {
      peer.send({ cmd: 'publish', topic: '/c', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false });
      const ack = await peer.packet('puback');
      expect((ack as { messageId: number }).messageId).toBe(9);
    } finally {
      await sleep(20);
      process.off('uncaughtException', onUncaught);
      link.destroy();
    }
  });
});

describe('corking', () => {
  it('writes the packets of one tick in a single socket write', async () => {
    const t = await linked();
    const calls: { kind: 'write' | 'writev'; chunks: number }[] = [];
    const s = t.socket as unknown as { _write: (...a: unknown[]) => unknown; _writev: (chunks: unknown[], ...a: unknown[]) => unknown };
    const write = s._write.bind(t.socket);
    const writev = s._writev.bind(t.socket);
    s._write = (...a) => (calls.push({ kind: 'write', chunks: 1 }), write(...a));
    s._writev = (chunks, ...a) => (calls.push({ kind: 'writev', chunks: chunks.length }), writev(chunks, ...a));
    void t.link.connect(FIELDS);
    t.link.subscribe('/devices/gw-1/errors', 0, () => undefined);
    for (let i = 0; i < 3; i++) t.link.publish(`/p/${i}`, Buffer.from(String(i)), 1);
    expect(calls).toEqual([]);
    await t.peer.packet('publish', 2);
    expect(calls).toEqual([{ kind: 'writev', chunks: 5 }]);
    expect(t.peer.chunks).toHaveLength(1);
    // The next tick is corked anew.
    t.link.publish('/later', Buffer.from('x'), 1);
    t.link.publish('/later', Buffer.from('y'), 1);
    await t.peer.packet('publish', 4);
    expect(calls).toEqual([
      { kind: 'writev', chunks: 5 },
      { kind: 'writev', chunks: 2 },
    ]);
    t.link.destroy();
  });
});

describe('how the link ends', () => {
  it.each([
    ['bytes that are not MQTT', Buffer.from([0x00, 0x00]), 'unreadable packet from the bridge: Not supported'],
    ['a CONNECT', undefined, 'the bridge sent CONNECT, which a server never sends to a client'],
    ['a SUBSCRIBE', undefined, 'the bridge sent SUBSCRIBE, which a server never sends to a client'],
  ])('ends with a protocol close on %s', async (label, raw, reason) => {
    const t = await linked();
    const id = t.link.publish('/a', Buffer.from('x'), 1);
    if (raw !== undefined) t.peer.sendRaw(raw);
    else if (label === 'a CONNECT') t.peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0 });
    else t.peer.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: '/x', qos: 0 }] });
    await soon('the close', () => t.closes.length > 0);
    expect(t.closes).toEqual([{ by: 'protocol', reason }]);
    expect(t.link.isOpen).toBe(false);
    expect(t.link.unanswered).toBe(0);
    // The link dropped the connection: the server reads our FIN.
    await soon('the FIN of the client', () => t.peer.endedAt !== undefined);
    t.peer.send({ cmd: 'puback', messageId: id });
    await sleep(20);
    expect(t.closes).toHaveLength(1);
  });

  it('ends with a protocol close on a CONNACK it never asked for', async () => {
    const t = await linked();
    t.peer.send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    await soon('the close', () => t.closes.length > 0);
    expect(t.closes).toEqual([{ by: 'protocol', reason: 'CONNACK before CONNECT' }]);
  });

  it('rejects the CONNECT with the protocol reason when garbage comes before the CONNACK', async () => {
    const t = await linked();
    const connack = t.link.connect(FIELDS);
    await t.peer.packet('connect');
    t.peer.sendRaw(Buffer.from([0xf0, 0x00]));
    const error = (await connack.catch((e: unknown) => e)) as LinkClosedError;
    expect(error).toBeInstanceOf(LinkClosedError);
    expect(error.why.by).toBe('protocol');
    expect(error.message).toBe('unreadable packet from the bridge: Not supported auth packet for this version MQTT');
  });

  it('reports the peer closing once, even though end and close both follow', async () => {
    const t = await linked();
    t.peer.socket.end();
    await once(t.socket, 'close');
    await sleep(20);
    expect(t.closes).toEqual([{ by: 'peer' }]);
    expect(t.link.isOpen).toBe(false);
  });

  it('reports a socket error with the error', async () => {
    const t = await linked();
    t.peer.socket.resetAndDestroy();
    await soon('the close', () => t.closes.length > 0);
    expect(t.closes).toHaveLength(1);
    const why = t.closes[0]!;
    expect(why.by).toBe('socket-error');
    expect((why as { error: NodeJS.ErrnoException }).error.code).toBe('ECONNRESET');
    await sleep(20);
    expect(t.closes).toHaveLength(1);
  });

  it('refuses to write once the connection is lost', async () => {
    const t = await linked();
    t.peer.socket.end();
    await soon('the close', () => t.closes.length > 0);
    const error = thrownRelayError(() => t.link.publish('/a', Buffer.from('x'), 1), 'ERR_CONNECTION_LOST');
    expect(error.message).toBe('cannot send publish: the connection to the bridge is closed');
    thrownRelayError(() => t.link.subscribe('/b', 0, () => undefined), 'ERR_CONNECTION_LOST');
    // A refused send takes no packet ID.
    expect(t.link.unanswered).toBe(0);
  });
});

describe('end()', () => {
  it('writes DISCONNECT and our FIN, and resolves without waiting for a server that never closes', async () => {
    const t = await linked();
    t.link.publish('/a', Buffer.from('x'), 1);
    const started = Date.now();
    await t.link.end(5000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(t.link.isOpen).toBe(false);
    await t.peer.packet('disconnect');
    await soon('the FIN of the client', () => t.peer.endedAt !== undefined);
    expect(t.peer.packets.map((p) => p.cmd)).toEqual(['publish', 'disconnect']);
    // The server has not closed its side; the link still does not report a close it caused itself.
    expect(t.peer.socket.writableEnded).toBe(false);
    await sleep(30);
    expect(t.closes).toEqual([]);
    const error = thrownRelayError(() => t.link.publish('/a', Buffer.from('x'), 1), 'ERR_CONNECTION_LOST');
    expect(error.message).toBe('cannot send publish: the connection to the bridge is closed');
  });

  it('does not report the server closing after end() either', async () => {
    const t = await linked();
    const ending = t.link.end(5000);
    t.peer.socket.end();
    await ending;
    await sleep(30);
    expect(t.closes).toEqual([]);
  });

  it('resolves by its timeout on a socket that cannot flush, and destroys it', async () => {
    const t = await linked();
    // The server reads nothing: a payload far above the kernel's buffers stays queued in the client.
    t.peer.socket.pause();
    t.link.publish('/big', Buffer.alloc(64 * 1024 * 1024), 0);
    await sleep(50);
    expect(t.socket.writableLength).toBeGreaterThan(0);
    const started = Date.now();
    await t.link.end(300);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2000);
    expect(t.socket.destroyed).toBe(true);
    expect(t.closes).toEqual([]);
  });

  it('does not report a connection the server drops while end() is flushing, and returns when it drops, not at the timeout', async () => {
    const t = await linked();
    t.peer.socket.pause();
    t.link.publish('/big', Buffer.alloc(64 * 1024 * 1024), 0);
    const started = Date.now();
    const ending = t.link.end(3000);
    setTimeout(() => t.peer.socket.resetAndDestroy(), 50);
    await ending;
    expect(Date.now() - started).toBeLessThan(1500);
    await sleep(30);
    expect(t.socket.destroyed).toBe(true);
    expect(t.closes).toEqual([]);
  });

  it('resolves at once on a link already closed', async () => {
    const t = await linked();
    t.link.destroy();
    const started = Date.now();
    await t.link.end(5000);
    expect(Date.now() - started).toBeLessThan(100);
    expect(t.peer.packets).toEqual([]);
  });
});

describe('keep-alive', () => {
  it('sends PINGREQ when nothing was sent for half the keep-alive, and not while busy', async () => {
    const t = await linked();
    void t.link.connect({ ...FIELDS, keepalive: 1 });
    await t.peer.packet('connect');
    // Busy for 800 ms: a packet every 150 ms leaves no idle half-second.
    for (let i = 0; i < 5; i++) {
      await sleep(150);
      t.link.publish('/busy', Buffer.from(String(i)), 0);
    }
    expect(t.peer.packets.filter((p) => p.cmd === 'pingreq')).toHaveLength(0);
    const idleFrom = Date.now();
    await t.peer.packet('pingreq', 0, 3000);
    expect(Date.now() - idleFrom).toBeLessThan(1500);
    t.link.destroy();
  });

  it('sends no PINGREQ with a keep-alive of 0', async () => {
    const t = await linked();
    void t.link.connect({ ...FIELDS, keepalive: 0 });
    await sleep(1200);
    expect(t.peer.packets.map((p: Packet) => p.cmd)).toEqual(['connect']);
    t.link.destroy();
  });
});

describe('MQTT 5.0', () => {
  /** A 5.0 link past its CONNECT; the raw server's parser reads 5.0 from then on, and `send5` writes 5.0. */
  async function linked5(): Promise<Linked & { send5: (p: Packet) => void }> {
    const t = await linked(5);
    void t.link.connect(FIELDS);
    await t.peer.packet('connect');
    return { ...t, send5: (p) => t.peer.sendRaw(generate(p, { protocolVersion: 5 })) };
  }

  it('writes a 5.0 CONNECT, and QoS 1 PUBLISHes and PUBACKs a 5.0 reader takes', async () => {
    const t = await linked5();
    expect(await t.peer.packet('connect')).toMatchObject({ protocolVersion: 5, protocolId: 'MQTT', clientId: FIELDS.clientId, clean: true });
    const id = t.link.publish('/devices/pump-1/events', Buffer.from('21.5'), 1);
    expect(await t.peer.packet('publish')).toMatchObject({ topic: '/devices/pump-1/events', qos: 1, messageId: id });
    expect(((await t.peer.packet('publish')) as IPublishPacket).payload.toString()).toBe('21.5');
    t.send5({ cmd: 'publish', topic: '/devices/gw-1/config', payload: Buffer.from('c'), qos: 1, messageId: 9, retain: false, dup: false });
    expect(await t.peer.packet('puback')).toMatchObject({ messageId: 9 });
    expect(t.messages.map((m) => m.topic)).toEqual(['/devices/gw-1/config']);
    t.link.destroy();
  });

  it('passes a PUBACK with a failure reason code to onAck as a refusal; Success, short or long, and 0x10 acknowledge', async () => {
    const t = await linked5();
    const answers: unknown[] = [];
    const ids = [0, 1, 2, 3].map((i) => t.link.publish(`/t/${i}`, Buffer.from('x'), 1, (refusal) => answers.push(refusal ?? 'acked')));
    t.peer.sendRaw(Buffer.from([0x40, 0x02, 0x00, ids[0]!]));
    t.send5({ cmd: 'puback', messageId: ids[1]!, reasonCode: 0x10 });
    t.send5({ cmd: 'puback', messageId: ids[2]!, reasonCode: 0x87, properties: { reasonString: "Device 'pump-1' is not attached" } });
    t.send5({ cmd: 'puback', messageId: ids[3]!, reasonCode: 0x97 });
    await soon('every PUBACK', () => answers.length === 4);
    expect(answers).toEqual(['acked', 'acked', { reasonCode: 0x87, reasonString: "Device 'pump-1' is not attached" }, { reasonCode: 0x97, reasonString: undefined }]);
    expect(t.link.unanswered).toBe(0);
    t.link.destroy();
  });

  it('resolves a 5.0 CONNACK with its reason code and reason string, and passes a SUBACK reason code as it came', async () => {
    const t = await linked(5);
    const connack = t.link.connect(FIELDS);
    const granted: number[] = [];
    const id = t.link.subscribe('/devices/gw-1/errors', 0, (g) => granted.push(g));
    await t.peer.packet('subscribe');
    t.peer.sendRaw(generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: 'blocked' } }, { protocolVersion: 5 }));
    t.peer.sendRaw(generate({ cmd: 'suback', messageId: id, granted: [0x87] }, { protocolVersion: 5 }));
    expect(await connack).toEqual({ returnCode: 0x87, sessionPresent: false, reasonString: 'blocked' });
    await soon('the SUBACK', () => granted.length > 0);
    expect(granted).toEqual([0x87]);
    t.link.destroy();
  });

  it("reads a 3.1.1 server's CONNACK 1 as reason code 1", async () => {
    const t = await linked(5);
    const connack = t.link.connect(FIELDS);
    await t.peer.packet('connect');
    t.peer.send({ cmd: 'connack', returnCode: 1, sessionPresent: false });
    expect(await connack).toMatchObject({ returnCode: 1 });
    t.link.destroy();
  });

  it("ends with a protocol close quoting a DISCONNECT's reason code and string; on 3.1.1 a DISCONNECT is a packet a server never sends", async () => {
    const t = await linked5();
    t.send5({ cmd: 'disconnect', reasonCode: 0x89, properties: { reasonString: 'busy' } });
    await soon('the close', () => t.closes.length > 0);
    expect(t.closes).toEqual([{ by: 'protocol', reason: 'the bridge sent DISCONNECT with reason code 0x89: busy' }]);
    const old = await linked();
    void old.link.connect(FIELDS);
    old.peer.send({ cmd: 'disconnect' });
    await soon('the 3.1.1 close', () => old.closes.length > 0);
    expect(old.closes).toEqual([{ by: 'protocol', reason: 'the bridge sent DISCONNECT, which a server never sends to a client' }]);
  });
});

describe('against the emulator', () => {
  let fleet: Fleet;
  let emulator: Emulator;

  beforeAll(async () => {
    fleet = await makeFleet({ gateways: [{ id: 'gw-link', bound: ['pump-link'] }], devices: [{ id: 'pump-link', keyless: true }] });
    emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  });
  afterAll(() => emulator.close());

  it('connects with a pipelined SUBSCRIBE, attaches, publishes, and ends cleanly', async () => {
    const socket = openGatewaySocket({ host: emulator.host, port: emulator.port, extraCaPem: emulator.ca });
    const closes: LinkClose[] = [];
    const link = new MqttLink(socket, { onMessage: () => undefined, onClose: (why) => closes.push(why) });
    const registry = { project: fleet.project, location: fleet.location, registry: fleet.registryId };
    const connack = link.connect(gatewayConnectFields({ registry, gatewayId: 'gw-link', jwt: await fleet.jwt('gw-link') }));
    const granted = new Promise<number>((resolve) => link.subscribe(errorsTopic('gw-link'), 0, resolve));
    expect(await connack).toEqual({ returnCode: 0, sessionPresent: false });
    expect(await granted).toBe(0);
    const attached = new Promise<void>((resolve) => link.publish(attachTopic('pump-link'), Buffer.from('{}'), 1, () => resolve()));
    await attached;
    const payload = `link-${Date.now()}`;
    await new Promise<void>((resolve) => link.publish(eventsTopic('pump-link', 'link'), Buffer.from(payload), 1, () => resolve()));
    expect(link.unanswered).toBe(0);
    const stored = emulator.registry.events.filter((e) => e.attributes.deviceId === 'pump-link');
    expect(stored.map((e) => Buffer.from(e.data, 'base64').toString())).toContain(payload);
    await link.end(2000);
    expect(closes).toEqual([]);
  });

  it('is refused with the emulator return code when the JWT is not valid', async () => {
    const socket = openGatewaySocket({ host: emulator.host, port: emulator.port, extraCaPem: emulator.ca });
    const link = new MqttLink(socket, { onMessage: () => undefined, onClose: () => undefined });
    const registry = { project: fleet.project, location: fleet.location, registry: fleet.registryId };
    const connack = await link.connect(gatewayConnectFields({ registry, gatewayId: 'gw-link', jwt: 'not.a.jwt' }));
    expect([4, 5]).toContain(connack.returnCode);
    link.destroy();
  });
});

describe('LinkClosedError', () => {
  it('carries the reason of each kind of close', () => {
    const err = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(new LinkClosedError({ by: 'socket-error', error: err }).message).toBe('read ECONNRESET');
    expect(new LinkClosedError({ by: 'protocol', reason: 'bad bytes' }).message).toBe('bad bytes');
    expect(new LinkClosedError({ by: 'peer' })).toBeInstanceOf(Error);
    expect(new LinkClosedError({ by: 'peer' })).not.toBeInstanceOf(RelayError);
  });
});
