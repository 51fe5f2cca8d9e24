/**
 * The webhook bodies in ./fixtures hold the same frame (device soil-probe-07, port 2, counter 1337, payload
 * 01 7b 00 e6 0c 1f, heard by two gateways) as The Things Stack and as ChirpStack send it.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { LoraMessage, LoraUplink } from '../../../lib/lorawan/uplink.js';

export const FRAME = Buffer.from('017b00e60c1f', 'hex');
export const DECODED = { moisture: 123, temperature: 23, battery_mv: 3103 };

export const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;

/** A fresh copy of a fixture, changed by `edit`. */
export function edited(name: string, edit: (doc: any) => void): Record<string, unknown> {
  const doc = fixture(name);
  edit(doc);
  return doc;
}

export function uplinkOf(message: LoraMessage): LoraUplink {
  if (message.kind !== 'uplink') throw new Error(`expected an uplink, got the event ${message.event}`);
  return message;
}

/** What both network servers' bodies say of the frame, read alike. */
export function expectTheSampleFrame(u: LoraUplink): void {
  expect(u.payload).toEqual(FRAME);
  expect(u.fPort).toBe(2);
  expect(u.fCnt).toBe(1337);
  expect(u.decoded).toEqual(DECODED);
  expect(u.device.deviceId).toBe('soil-probe-07');
  // Upper case from The Things Stack, lower case from ChirpStack: one spelling for templates.
  expect(u.device.devEui).toBe('70b3d57ed0061a2c');
  expect(u.gateways.map((g) => [g.rssi, g.snr])).toEqual([
    [-97, 7.25],
    [-112, -4.5],
  ]);
}
