/**
 * The device connections a test file opens on the emulator: each test connects what it needs, and every connection
 * it opened is closed after it, whatever the test's outcome.
 *
 * @example
 * const connected = deviceConnections(() => ({ bridge: emulator, fleet }));
 * const client = await connected('dev-1');            // on the file's emulator
 * const other = await connected('gw-1', otherBridge); // on another one, closed all the same
 */
import type { MqttClient } from 'mqtt';
import { afterEach } from 'vitest';
import { connectDevice, type BridgeEndpoint, type DeviceIdentity } from './emulator-fixtures.js';

/** Connects a device (on the file's emulator unless told otherwise); `closeAll()` closes what is open now. */
export interface DeviceConnections {
  (deviceId: string, bridge?: BridgeEndpoint, fleet?: DeviceIdentity): Promise<MqttClient>;
  /** For a test that closes an emulator of its own: its connections first, or the close waits for them. */
  closeAll(): Promise<void>;
}

/** `defaults` is read at each connection: the file's emulator and fleet exist only once its `beforeAll` has run. */
export function deviceConnections(defaults: () => { bridge: BridgeEndpoint; fleet: DeviceIdentity }): DeviceConnections {
  const open: MqttClient[] = [];
  const connect = async (deviceId: string, bridge?: BridgeEndpoint, fleet?: DeviceIdentity): Promise<MqttClient> => {
    const client = await connectDevice(bridge ?? defaults().bridge, fleet ?? defaults().fleet, deviceId);
    open.push(client);
    return client;
  };
  const closeAll = async (): Promise<void> => {
    await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
  };
  afterEach(closeAll);
  return Object.assign(connect, { closeAll });
}
