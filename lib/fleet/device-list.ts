/**
 * A device list file for `fleet plan --devices`: one device ID a line (blank lines and `#` comments ignored), or
 * a JSON array of ID strings. Every ID is checked against IoT Core's rule, and a duplicate is refused, each with
 * the line (or array index) it is on, so a list of 100,000 IDs with one typo says where the typo is.
 *
 * @example
 * parseDeviceList('pump-0001\npump-0002\n# spares\npump-0003\n', 'devices.txt'); // ['pump-0001', 'pump-0002', 'pump-0003']
 * parseDeviceList('["pump-0001", "pump-0002"]', 'devices.json');
 */
import { readFile } from 'node:fs/promises';
import { RelayError, describeInput } from '../errors.js';
import { deviceIdProblem } from '../iotcore/device-id.js';

/** Problems listed before the rest are summed up. */
const SHOWN = 10;

export function parseDeviceList(text: string, origin: string): string[] {
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  const entries: { id: unknown; where: string }[] = [];
  if (trimmed.startsWith('[')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch (e) {
      throw new RelayError('ERR_CONFIG', `${origin}: starts with [ but is not a JSON array: ${(e as Error).message}`);
    }
    if (!Array.isArray(doc)) throw new RelayError('ERR_CONFIG', `${origin}: must be a JSON array of device IDs`);
    doc.forEach((id, i) => entries.push({ id, where: `[${i}]` }));
  } else {
    text.split(/\r?\n/).forEach((line, i) => {
      const id = line.replace(/#.*$/, '').trim();
      if (id !== '') entries.push({ id, where: `line ${i + 1}` });
    });
  }
  const problems: string[] = [];
  const firstSeen = new Map<string, string>();
  const ids: string[] = [];
  for (const { id, where } of entries) {
    const problem = deviceIdProblem(id);
    if (problem !== undefined) {
      problems.push(`${where}: device ID ${describeInput(id)} ${problem}`);
      continue;
    }
    const earlier = firstSeen.get(id as string);
    if (earlier !== undefined) {
      problems.push(`${where}: ${id} is listed twice (first at ${earlier})`);
      continue;
    }
    firstSeen.set(id as string, where);
    ids.push(id as string);
  }
  if (problems.length > 0) {
    const more = problems.length > SHOWN ? `\n  … and ${problems.length - SHOWN} more` : '';
    throw new RelayError('ERR_CONFIG', `${origin}: ${problems.length} bad entr${problems.length === 1 ? 'y' : 'ies'}:\n  ${problems.slice(0, SHOWN).join('\n  ')}${more}`);
  }
  if (ids.length === 0) throw new RelayError('ERR_CONFIG', `${origin}: lists no device`);
  return ids;
}

export async function readDeviceList(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `device list ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseDeviceList(text, path);
}
