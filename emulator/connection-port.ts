/**
 * What a device's connection offers the handlers of its publishes (gateway.ts for attach and detach, telemetry.ts
 * for events and state): the few facts and actions they use, so that they need not know the connection itself.
 */
import type { IPublishPacket } from 'mqtt-packet';
import type { GatewayErrorReport } from './errors-topic.js';
import type { BridgeOptions } from './options.js';
import type { Registry, Status } from './registry.js';

/**
 * Why the bridge ended a connection. `status` is what it writes to the device's lastErrorStatus (google.rpc codes);
 * closes the client asked for, and injected faults, leave the device untouched.
 */
export interface CloseReason {
  message: string;
  status?: Status;
}

export interface ConnectionPort {
  readonly registry: Registry;
  readonly options: Pick<BridgeOptions, 'ackFailedAttach' | 'clockSkewSeconds' | 'stateRateLimit' | 'jwtLifetime'>;
  /** Time (ms) of each device's last accepted state update, keyed `registry/device`, shared by all connections. */
  readonly lastStateAt: Map<string, number>;
  readonly registryId: string;
  /** The connected device; the gateway, when devices are attached through it. */
  readonly deviceId: string;
  /** Devices the gateway attached on this connection. */
  readonly attached: Set<string>;
  readonly closed: boolean;
  log(line: string): void;
  /** Tells the gateway on its errors topic; true if it was subscribed to hear it. */
  report(error: GatewayErrorReport): boolean;
  /** With `ackFailedPublish`: PUBACKs a QoS 1 PUBLISH the bridge refuses, before its error goes out. */
  acknowledgeRefused(packet: IPublishPacket): void;
  /** Ends the attachment of a device, and the subscriptions made for it. */
  detach(deviceId: string): void;
  close(reason?: CloseReason): void;
}
