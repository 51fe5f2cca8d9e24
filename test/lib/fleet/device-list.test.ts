import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDeviceList, readDeviceList } from '../../../lib/fleet/device-list.js';
import { rejectedRelayError, thrownRelayError } from '../../helpers/relay-error.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'device-list-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('device list files', () => {
  it('reads one ID a line, skipping blank lines and comments, or a JSON array', () => {
    expect(parseDeviceList('\uFEFFpump-0001\r\n\n  pump-0002  # the spare\n# retired:\n#pump-0003\npump-0004', 'd.txt')).toEqual(['pump-0001', 'pump-0002', 'pump-0004']);
    expect(parseDeviceList(' ["pump-0001", "pump-0002"]\n', 'd.json')).toEqual(['pump-0001', 'pump-0002']);
  });

  it('names the line or index of every bad or repeated ID', () => {
    expect(() => parseDeviceList('pump-0001\npump/2\npump-0001\ngoog-x\n', 'd.txt')).toThrow(
      /d\.txt: 3 bad entries:\n {2}line 2: device ID "pump\/2" must start with a letter.*\n {2}line 3: pump-0001 is listed twice \(first at line 1\)\n {2}line 4: device ID "goog-x" must not start with "goog"/,
    );
    expect(() => parseDeviceList('["ok-1", 42, null]', 'd.json')).toThrow(/\[1\]: device ID 42 must be a string\n {2}\[2\]: device ID null must be a string/);
    expect(() => parseDeviceList('[1, 2', 'd.json')).toThrow(/d\.json: starts with \[ but is not a JSON array/);
    expect(() => parseDeviceList('{"a": 1}', 'd.json')).toThrow(/bad entr/);
    expect(() => parseDeviceList('# nothing\n\n', 'd.txt')).toThrow(/lists no device/);
  });

  it('sums up long lists of problems', () => {
    const lines = Array.from({ length: 25 }, (_, i) => `bad/${i}`).join('\n');
    const { message } = thrownRelayError(() => parseDeviceList(lines, 'd.txt'), 'ERR_CONFIG');
    expect(message.split('\n')).toHaveLength(12);
    expect(message).toMatch(/… and 15 more$/);
  });

  it('says which file cannot be read', async () => {
    await expect(readDeviceList(join(dir, 'missing.txt'))).rejects.toThrow(/device list .*missing\.txt cannot be read: ENOENT/);
  });
});

describe('device list edge cases', () => {
  it('counts one bad entry as such', () => {
    expect(thrownRelayError(() => parseDeviceList('ok-1\nbad/1', 'd.txt'), 'ERR_CONFIG').message).toMatch(/^d\.txt: 1 bad entry:\n {2}line 2: device ID "bad\/1" must start with a letter/);
  });

  it('shows ten problems in full: an eleventh is summed up', () => {
    const ten = thrownRelayError(() => parseDeviceList(Array.from({ length: 10 }, (_, i) => `bad/${i}`).join('\n'), 'd.txt'), 'ERR_CONFIG').message;
    expect(ten).not.toMatch(/more$/);
    const eleven = thrownRelayError(() => parseDeviceList(Array.from({ length: 11 }, (_, i) => `bad/${i}`).join('\n'), 'd.txt'), 'ERR_CONFIG').message;
    expect(eleven).toMatch(/\n {2}… and 1 more$/);
  });

  it('refuses a JSON document that is not an array', () => {
    expect(thrownRelayError(() => parseDeviceList('[1', 'd.json'), 'ERR_CONFIG').message).toMatch(/^d\.json: starts with \[ but is not a JSON array: /);
    expect(thrownRelayError(() => parseDeviceList('[]', 'd.json'), 'ERR_CONFIG').message).toBe('d.json: lists no device');
  });

  it('reads a file', async () => {
    await writeFile(join(dir, 'devices.txt'), 'pump-0001\n# a comment\npump-0002\n');
    await expect(readDeviceList(join(dir, 'devices.txt'))).resolves.toEqual(['pump-0001', 'pump-0002']);
    expect((await rejectedRelayError(readDeviceList(join(dir, 'none.txt')), 'ERR_CONFIG')).message).toBe(`device list ${join(dir, 'none.txt')} cannot be read: ENOENT`);
  });
});
