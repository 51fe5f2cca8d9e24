/**
 * The templates an integration names its devices and subfolders with: text with `{placeholder}`s filled from the
 * uplink, for example `lora-{dev_eui}` or `lorawan/{f_port}`.
 *
 * | placeholder | value |
 * |---|---|
 * | `{device_id}` | The Things Stack: `end_device_ids.device_id`; ChirpStack: `deviceInfo.deviceName` |
 * | `{dev_eui}` | the DevEUI, 16 hexadecimal digits in lower case |
 * | `{application_id}` | The Things Stack: `end_device_ids.application_ids.application_id`; ChirpStack: `deviceInfo.applicationId` |
 * | `{tag.<key>}` | ChirpStack only: the device's (or its profile's) tag `<key>` from `deviceInfo.tags` |
 * | `{f_port}` | subfolders only: the frame port |
 * | `{event}` | event subfolders only: the event's name (`join`, `status`, `join_accept`...) |
 *
 * A template is checked when the integrations are read (an unknown placeholder is ERR_CONFIG), and filled for each
 * uplink; a placeholder the uplink has no value for is a refusal naming it. What the filled text must be (a valid
 * device ID, a valid subfolder) is checked by the caller with IoT Core's own rules.
 *
 * @example
 * const t = compileTemplate('lora-{dev_eui}', DEVICE_PLACEHOLDERS, 'integrations[0].deviceId');
 * renderTemplate(t, { dev_eui: '70b3d57ed005a1b2' }); // 'lora-70b3d57ed005a1b2'
 */
import { RelayError } from '../errors.js';

export interface TemplateValues {
  device_id?: string;
  dev_eui?: string;
  application_id?: string;
  f_port?: number;
  event?: string;
  tags?: Readonly<Record<string, string>>;
}

type Part = { literal: string } | { field: Exclude<keyof TemplateValues, 'tags'> } | { tag: string };

export interface CompiledTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
}

/** What a device ID template may use. */
export const DEVICE_PLACEHOLDERS = ['device_id', 'dev_eui', 'application_id', 'tag'] as const;
/** What a subfolder template may use. */
export const SUBFOLDER_PLACEHOLDERS = [...DEVICE_PLACEHOLDERS, 'f_port'] as const;
/** What the subfolder of a relayed non-uplink event may use. */
export const EVENT_PLACEHOLDERS = [...DEVICE_PLACEHOLDERS, 'event'] as const;

type Placeholder = (typeof SUBFOLDER_PLACEHOLDERS)[number] | 'event';

const MAX_TEMPLATE_LENGTH = 256;

/** Where each value comes from, for the refusal when an uplink has none. */
const SOURCES: Record<Exclude<keyof TemplateValues, 'tags'>, string> = {
  device_id: 'the device ID (end_device_ids.device_id, deviceInfo.deviceName)',
  dev_eui: 'the DevEUI (end_device_ids.dev_eui, deviceInfo.devEui)',
  application_id: 'the application ID (end_device_ids.application_ids.application_id, deviceInfo.applicationId)',
  f_port: 'the frame port',
  event: 'the event name',
};

export function compileTemplate(source: unknown, allowed: readonly Placeholder[], where: string): CompiledTemplate {
  if (typeof source !== 'string' || source.length === 0 || source.length > MAX_TEMPLATE_LENGTH) {
    throw new RelayError('ERR_CONFIG', `${where} must be a template of 1 to ${MAX_TEMPLATE_LENGTH} characters`);
  }
  const parts: Part[] = [];
  let rest = source;
  while (rest.length > 0) {
    const open = rest.indexOf('{');
    const close = rest.indexOf('}');
    if (open < 0) {
      if (close >= 0) throw new RelayError('ERR_CONFIG', `${where}: "}" without "{" in ${JSON.stringify(source)}`);
      parts.push({ literal: rest });
      break;
    }
    if (close >= 0 && close < open) throw new RelayError('ERR_CONFIG', `${where}: "}" without "{" in ${JSON.stringify(source)}`);
    if (open > 0) parts.push({ literal: rest.slice(0, open) });
    const end = rest.indexOf('}', open);
    if (end < 0) throw new RelayError('ERR_CONFIG', `${where}: "{" without "}" in ${JSON.stringify(source)}`);
    const name = rest.slice(open + 1, end);
    parts.push(placeholder(name, allowed, where));
    rest = rest.slice(end + 1);
  }
  return { source, parts };
}

function placeholder(name: string, allowed: readonly Placeholder[], where: string): Part {
  if (name.startsWith('tag.')) {
    const key = name.slice(4);
    if (!allowed.includes('tag')) throw new RelayError('ERR_CONFIG', `${where}: {${name}} is not available here`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(key)) throw new RelayError('ERR_CONFIG', `${where}: {${name}} names no valid tag key`);
    return { tag: key };
  }
  if (name === 'tag' || !(allowed as readonly string[]).includes(name)) {
    const names = allowed.map((a) => (a === 'tag' ? '{tag.<key>}' : `{${a}}`)).join(', ');
    throw new RelayError('ERR_CONFIG', `${where}: unknown placeholder {${name}}; use ${names}`);
  }
  return { field: name as Exclude<keyof TemplateValues, 'tags'> };
}

/**
 * Whether the template uses a placeholder at all. A fixed text would send every device of an integration to one
 * IoT Core device: fine for a subfolder, never for a device ID, so the integration settings refuse that.
 */
export function hasPlaceholder(template: CompiledTemplate): boolean {
  return template.parts.some((p) => !('literal' in p));
}

export function usesTags(template: CompiledTemplate): boolean {
  return template.parts.some((p) => 'tag' in p);
}

/**
 * Fills the template. Throws RelayError ERR_INVALID_FIELD naming the placeholder when the uplink has no value for
 * it; `field` is the integration setting the template came from.
 */
export function renderTemplate(template: CompiledTemplate, values: TemplateValues, field: string): string {
  let out = '';
  for (const part of template.parts) {
    if ('literal' in part) {
      out += part.literal;
    } else if ('tag' in part) {
      const value = values.tags?.[part.tag];
      if (value === undefined || value === '') {
        throw new RelayError('ERR_INVALID_FIELD', `${field} ${JSON.stringify(template.source)} needs the tag "${part.tag}", which the device does not have`, { field });
      }
      out += value;
    } else {
      const value = values[part.field];
      if (value === undefined || value === '') {
        throw new RelayError('ERR_INVALID_FIELD', `${field} ${JSON.stringify(template.source)} needs ${SOURCES[part.field]}, which the message does not carry`, { field });
      }
      out += String(value);
    }
  }
  return out;
}
