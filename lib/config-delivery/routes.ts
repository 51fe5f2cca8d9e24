/**
 * The config routes, matched on the request method and path:
 *
 * | method and path | answer |
 * |---|---|
 * | `GET /v1/projects/{p}/locations/{l}/registries/{r}/devices/{d}/config` | IoT Core HTTP bridge form, JSON |
 * | `GET /devices/{d}/config` | the raw bytes, with an ETag |
 *
 * API Gateway HTTP APIs deliver the path already percent-decoded (a device ID with `%` arrives as itself), so the
 * segments are taken as they are; decoding again would turn `dev%41` into `devA`.
 *
 * Anything else is refused with NOT_FOUND (`HttpRefusal`), another method too: no config resource takes one. A
 * device ID that breaks IoT Core's rule is refused with ERR_INVALID_DEVICE_ID.
 *
 * @example
 * matchConfigRoute('GET', '/devices/pump-0042/config'); // { form: 'raw', deviceId: 'pump-0042' }
 */
import { HttpRefusal } from '../http/error-envelope.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import type { RegistryPath } from '../iotcore/topics.js';

export type ConfigRoute = { form: 'iotcore'; registry: RegistryPath; deviceId: string } | { form: 'raw'; deviceId: string };

const LONG_FORM = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/registries\/([^/]+)\/devices\/([^/]+)\/config$/;
const SHORT_FORM = /^\/devices\/([^/]+)\/config$/;

export function matchConfigRoute(method: string, path: string): ConfigRoute {
  if (method !== 'GET') throw new HttpRefusal('NOT_FOUND', `${method} is not served here`);
  const long = LONG_FORM.exec(path);
  if (long) {
    const [, project, location, registry, deviceId] = long as unknown as [string, string, string, string, string];
    assertDeviceId(deviceId);
    return { form: 'iotcore', registry: { project, location, registry }, deviceId };
  }
  const short = SHORT_FORM.exec(path);
  if (short) {
    const deviceId = short[1]!;
    assertDeviceId(deviceId);
    return { form: 'raw', deviceId };
  }
  throw new HttpRefusal('NOT_FOUND', 'no such resource');
}
