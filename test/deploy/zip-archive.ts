/**
 * Reads the entries of a deployment zip (the archives `serverless package` writes), so the tests can look inside a
 * bundle the way Lambda will unpack it. Only what those archives use: no ZIP64, stored or deflated entries.
 *
 * @example
 * const entries = readZip(await readFile('.serverless/ingest.zip'));
 * entries.get('handlers/ingest.mjs')?.size; // uncompressed bytes
 */
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** Uncompressed size, as the central directory records it. */
  size: number;
  compressedSize: number;
  /** The entry's bytes, inflated on demand. */
  read(): Buffer;
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_FILE_HEADER = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;

export function readZip(zip: Buffer): Map<string, ZipEntry> {
  const end = findEndOfCentralDirectory(zip);
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const entries = new Map<string, ZipEntry>();
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(at) !== CENTRAL_FILE_HEADER) throw new Error(`zip: no central directory header at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localHeader = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    entries.set(name, { name, size, compressedSize, read: () => entryData(zip, localHeader, method, compressedSize, name) });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function findEndOfCentralDirectory(zip: Buffer): number {
  // The record is 22 bytes plus a comment of at most 65535.
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY) return at;
  }
  throw new Error('zip: no end of central directory record');
}

function entryData(zip: Buffer, localHeader: number, method: number, compressedSize: number, name: string): Buffer {
  if (zip.readUInt32LE(localHeader) !== LOCAL_FILE_HEADER) throw new Error(`zip: no local header for ${name}`);
  // The local header's own name and extra lengths: the extra field may differ from the central directory's.
  const start = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
  const data = zip.subarray(start, start + compressedSize);
  if (method === STORED) return Buffer.from(data);
  if (method === DEFLATED) return inflateRawSync(data);
  throw new Error(`zip: ${name} uses compression method ${method}`);
}
