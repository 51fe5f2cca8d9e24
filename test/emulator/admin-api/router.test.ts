/** How a request URL finds its route: path and custom method parsing, captures, resources and their methods. */
import { describe, expect, it } from 'vitest';
import { Router, describeUrl, entryFor, parseUrl } from '../../../emulator/admin-api/router.js';
import type { RouteEntry } from '../../../emulator/admin-api/router.js';

describe('parseUrl', () => {
  it('splits segments, the custom method and the query', () => {
    expect(parseUrl('/v1/registries/r/devices/d:sendCommandToDevice?alt=json')).toEqual({
      segments: ['v1', 'registries', 'r', 'devices', 'd'],
      verb: 'sendCommandToDevice',
      query: 'alt=json',
    });
    expect(parseUrl('/emulator/health')).toEqual({ segments: ['emulator', 'health'], verb: undefined, query: '' });
  });

  it('decodes each segment alone: an encoded slash stays in its segment, an encoded colon starts the method', () => {
    expect(parseUrl('/devices/a%2Fb').segments).toEqual(['devices', 'a/b']);
    expect(parseUrl('/devices/d%3AmodifyCloudToDeviceConfig')).toMatchObject({ segments: ['devices', 'd'], verb: 'modifyCloudToDeviceConfig' });
  });

  it('takes absolute-form targets by their path, and nothing from a target without a leading slash', () => {
    expect(parseUrl('http://127.0.0.1:8081/emulator/health?x=1')).toEqual({ segments: ['emulator', 'health'], verb: undefined, query: 'x=1' });
    expect(parseUrl('HTTPS://host')).toEqual({ segments: [''], verb: undefined, query: '' });
    expect(parseUrl('*')).toEqual({ segments: [], verb: undefined, query: '' });
  });

  it('refuses a malformed escape as INVALID_ARGUMENT', () => {
    expect(() => parseUrl('/devices/%zz')).toThrow(expect.objectContaining({ status: 'INVALID_ARGUMENT' }));
  });

  it('names the URL as the client wrote it, decoded', () => {
    expect(describeUrl(parseUrl('/a/b%3Averb?q=1'))).toBe('/a/b:verb');
    expect(describeUrl(parseUrl('/a/b'))).toBe('/a/b');
  });
});

describe('Router', () => {
  const entry = (method: RouteEntry['method'], path: string, query: string[] = []): RouteEntry => ({ method, path, query });
  const router = new Router([
    entry('GET', '/things/{thing}', ['fieldMask']),
    entry('PATCH', '/things/{thing}', ['updateMask']),
    entry('DELETE', '/things/{thing}'),
    entry('POST', '/things/{thing}:poke'),
    entry('GET', '/things'),
  ]);

  it('gathers one path\'s methods into one resource, in the order of the entries', () => {
    expect(router.resources.map((r) => [r.segments.join('/'), r.verb, [...r.methods.keys()]])).toEqual([
      ['things/{thing}', undefined, ['GET', 'PATCH', 'DELETE']],
      ['things/{thing}', 'poke', ['POST']],
      ['things', undefined, ['GET']],
    ]);
  });

  it('lets a resource accept the query parameters of all its methods', () => {
    expect(router.resources[0]!.queryParams).toEqual(['fieldMask', 'updateMask']);
    expect(router.resources[2]!.queryParams).toEqual([]);
  });

  it('captures the named segments, and tells paths apart by length, literals and custom method', () => {
    const found = router.find(parseUrl('/things/t-1'));
    expect(found?.params).toEqual({ thing: 't-1' });
    expect(found?.resource).toBe(router.resources[0]);
    expect(router.find(parseUrl('/things/t-1:poke'))?.resource).toBe(router.resources[1]);
    expect(router.find(parseUrl('/things'))?.resource).toBe(router.resources[2]);
    for (const miss of ['/things/t-1:prod', '/things/t-1/more', '/thing/t-1', '/things/', '/things/t-1:']) expect(router.find(parseUrl(miss)), miss).toBeUndefined();
  });

  it('finds a method\'s entry, and none for a method the resource lacks or a name of Object.prototype', () => {
    const resource = router.resources[0]!;
    expect(entryFor(resource, 'PATCH')).toMatchObject({ method: 'PATCH', path: '/things/{thing}' });
    for (const method of ['PUT', 'constructor', '__proto__', undefined]) expect(entryFor(resource, method)).toBeUndefined();
  });

  it('refuses two entries for one method and path', () => {
    expect(() => new Router([entry('GET', '/a/{x}'), entry('GET', '/a/{x}')])).toThrow('two routes for GET /a/{x}');
  });
});
