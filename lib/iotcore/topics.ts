/**
 * Topic and client-ID builders of the MQTT bridge, and the parser the emulator uses for incoming topics.
 * Builders validate every part they insert, so a device ID or subfolder taken from input can never add a level,
 * a wildcard or a NUL to a topic (docs/design.md rule 7): a device ID with a `+`, which IoT Core allows, is refused
 * with ERR_DEVICE_ID_MQTT_WILDCARD.
 *
 * @example
 * eventsTopic('pump-0042', 'alarms/high'); // '/devices/pump-0042/events/alarms/high'
 */
import { RelayError } from '../errors.js';
import { assertDeviceId, assertTopicDeviceId, isDeviceId } from './device-id.js';
import { MAX_SUBFOLDER_LENGTH } from './limits.js';

/** Why a subfolder is refused, or undefined when it is valid. */
export function subfolderProblem(subfolder: unknown): string | undefined {
  if (typeof subfolder !== 'string') return 'must be a string';
  if (subfolder.length === 0) return 'must not be empty (leave it out instead)';
  if (subfolder.length > MAX_SUBFOLDER_LENGTH) return `must be at most ${MAX_SUBFOLDER_LENGTH} characters`;
  if (/[\u0000-\u001f\u007f]/.test(subfolder)) return 'must not contain NUL or control characters';
  if (/[+#]/.test(subfolder)) return 'must not contain the MQTT wildcards + or #';
  if (subfolder.split('/').some((s) => s.length === 0)) return 'must not have an empty level (leading, trailing or double /)';
  return undefined;
}

export function assertSubfolder(subfolder: unknown, field = 'subfolder'): asserts subfolder is string {
  const problem = subfolderProblem(subfolder);
  if (problem !== undefined) throw new RelayError('ERR_INVALID_SUBFOLDER', `${field} ${problem}`, { field });
}

function device(id: string): string {
  assertTopicDeviceId(id);
  return `/devices/${id}`;
}

export function eventsTopic(deviceId: string, subfolder?: string): string {
  if (subfolder === undefined) return `${device(deviceId)}/events`;
  assertSubfolder(subfolder);
  return `${device(deviceId)}/events/${subfolder}`;
}
export const stateTopic = (deviceId: string): string => `${device(deviceId)}/state`;
export const configTopic = (deviceId: string): string => `${device(deviceId)}/config`;
export const commandsTopic = (deviceId: string): string => `${device(deviceId)}/commands/#`;
export const attachTopic = (deviceId: string): string => `${device(deviceId)}/attach`;
export const detachTopic = (deviceId: string): string => `${device(deviceId)}/detach`;
export const errorsTopic = (gatewayId: string): string => `${device(gatewayId)}/errors`;

export interface RegistryPath {
  project: string;
  location: string;
  registry: string;
}

/** The MQTT client ID of a device: its full resource path (docs/protocol.md §1.2). */
export function clientId(path: RegistryPath, deviceId: string): string {
  assertDeviceId(deviceId);
  return `${registryName(path)}/devices/${deviceId}`;
}

export function registryName(path: RegistryPath): string {
  return `projects/${path.project}/locations/${path.location}/registries/${path.registry}`;
}

const CLIENT_ID = /^projects\/([^/]+)\/locations\/([^/]+)\/registries\/([^/]+)\/devices\/([^/]+)$/;

export function parseClientId(id: string): (RegistryPath & { deviceId: string }) | undefined {
  const m = CLIENT_ID.exec(id);
  if (!m) return undefined;
  return { project: m[1]!, location: m[2]!, registry: m[3]!, deviceId: m[4]! };
}

export type TopicKind = 'events' | 'state' | 'config' | 'commands' | 'attach' | 'detach' | 'errors';

export interface ParsedTopic {
  deviceId: string;
  kind: TopicKind;
  /** events: the subfolder after `events/`; commands: the filter after `commands/` (e.g. `#`). */
  subfolder?: string;
}

/**
 * Parses a topic a client published or subscribed to. Returns `{ malformed }` when the topic is under
 * `/devices/` but is not a valid device topic (the bridge answers GATEWAY_INVALID_MQTT_TOPIC), and undefined
 * when the topic is not an IoT Core topic at all (the bridge closes the connection).
 */
export function parseTopic(topic: string): ParsedTopic | { malformed: string } | undefined {
  if (!topic.startsWith('/devices/')) return undefined;
  const rest = topic.slice('/devices/'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { malformed: 'no topic kind after the device ID' };
  const deviceId = rest.slice(0, slash);
  if (!isDeviceId(deviceId)) return { malformed: `invalid device ID '${deviceId}'` };
  const tail = rest.slice(slash + 1);
  const [kind, ...more] = tail.split('/');
  const sub = more.join('/');
  switch (kind) {
    case 'events':
      if (more.length === 0) return { deviceId, kind };
      if (subfolderProblem(sub) !== undefined) return { malformed: `invalid subfolder '${sub}'` };
      return { deviceId, kind, subfolder: sub };
    case 'commands':
      return more.length === 0 ? { deviceId, kind } : { deviceId, kind, subfolder: sub };
    case 'state':
    case 'config':
    case 'attach':
    case 'detach':
    case 'errors':
      if (more.length !== 0) return { malformed: `${kind} takes no subfolder` };
      return { deviceId, kind };
    default:
      return { malformed: `unknown topic kind '${kind ?? ''}'` };
  }
}
