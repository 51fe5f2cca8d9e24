/** What the admin API's query parameters select: pages and their tokens, devices.list's filters, list lengths, events. */
import { describe, expect, it } from 'vitest';
import { BY_ID, BY_NUM_ID, MAX_PAGE_SIZE, deviceIdFilter, eventFilter, gatewayListFilter, newest, paginate } from '../../../emulator/admin-api/query.js';
import { Registry } from '../../../emulator/registry.js';
import { Query } from '../../../emulator/rest-json.js';

const q = (raw: string) => new Query(raw);
const badArg = (message: RegExp) => expect.objectContaining({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });

function registryWith(ids: string[]): Registry {
  const registry = new Registry('p', 'l');
  for (const id of ids) registry.createRegistry({ id });
  return registry;
}

describe('paginate', () => {
  const registries = registryWith(['reg-c', 'reg-a', 'reg-e', 'reg-b', 'reg-d']).registries();

  it('sorts, serves pages of pageSize, and hands a token until the last page', () => {
    const first = paginate(registries, BY_ID, q('pageSize=2'));
    expect(first.page.map((r) => r.id)).toEqual(['reg-a', 'reg-b']);
    const second = paginate(registries, BY_ID, q(`pageSize=2&pageToken=${first.nextPageToken!}`));
    expect(second.page.map((r) => r.id)).toEqual(['reg-c', 'reg-d']);
    const last = paginate(registries, BY_ID, q(`pageSize=2&pageToken=${second.nextPageToken!}`));
    expect(last).toEqual({ page: [expect.objectContaining({ id: 'reg-e' })] });
  });

  it('resumes after the last item served, so an item removed between two calls skips no other', () => {
    const first = paginate(registries, BY_ID, q('pageSize=2'));
    const withoutB = registries.filter((r) => r.id !== 'reg-b');
    expect(paginate(withoutB, BY_ID, q(`pageSize=2&pageToken=${first.nextPageToken!}`)).page.map((r) => r.id)).toEqual(['reg-c', 'reg-d']);
  });

  it('takes 0 or nothing as the maximum, and cuts a larger size to it', () => {
    const many = Array.from({ length: MAX_PAGE_SIZE + 1 }, (_, i) => ({ id: String(i).padStart(4, '0') })) as never[];
    for (const raw of ['', 'pageSize=0', 'pageSize=100000']) {
      const { page, nextPageToken } = paginate(many, BY_ID, q(raw));
      expect(page, raw).toHaveLength(MAX_PAGE_SIZE);
      expect(nextPageToken, raw).toBeDefined();
    }
  });

  it('orders devices by numId as numbers, and refuses a token it did not hand out', () => {
    const devices = [{ numId: '10' }, { numId: '9' }, { numId: '100' }] as never[];
    expect(paginate(devices, BY_NUM_ID, q('')).page).toEqual([{ numId: '9' }, { numId: '10' }, { numId: '100' }]);
    const forged = Buffer.from(JSON.stringify({ after: 'x' })).toString('base64url');
    for (const token of ['garbage', forged]) expect(() => paginate(devices, BY_NUM_ID, q(`pageToken=${token}`))).toThrow(badArg(/pageToken/));
    expect(() => paginate(devices, BY_NUM_ID, q('pageSize=-1'))).toThrow(badArg(/pageSize/));
  });
});

describe('devices.list filters', () => {
  const registry = registryWith(['reg']);
  registry.createDevice('reg', { id: 'gw-1', gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' } });
  registry.createDevice('reg', { id: 'd-1' });
  registry.createDevice('reg', { id: 'd-2' });
  registry.bind('reg', 'gw-1', 'd-2');
  const all = registry.listDevices('reg');
  const kept = (keep: (d: (typeof all)[number]) => boolean) => all.filter(keep).map((d) => d.id);

  it('keeps the devices named by ID or numId, repeated or comma-separated; all when none is named', () => {
    expect(kept(deviceIdFilter(q('')))).toEqual(['gw-1', 'd-1', 'd-2']);
    expect(kept(deviceIdFilter(q('deviceIds=d-1,gw-1')))).toEqual(['gw-1', 'd-1']);
    expect(kept(deviceIdFilter(q(`deviceIds=d-1&deviceNumIds=${all[2]!.numId}`)))).toEqual(['d-1', 'd-2']);
    expect(kept(deviceIdFilter(q(`deviceNumIds=00${all[0]!.numId}`)))).toEqual(['gw-1']);
  });

  it('refuses numIds that are not unsigned integers, and more than 10,000 IDs', () => {
    expect(() => deviceIdFilter(q('deviceNumIds=-1'))).toThrow(badArg(/unsigned/));
    expect(() => deviceIdFilter(q(`deviceIds=${Array.from({ length: 10_001 }, (_, i) => `d${i}`).join(',')}`))).toThrow(badArg(/at most 10000/));
  });

  it('keeps gateways, non-gateways, a gateway\'s devices or a device\'s gateways', () => {
    const filter = (raw: string) => kept(gatewayListFilter(registry, 'reg', q(raw)));
    expect(filter('')).toEqual(['gw-1', 'd-1', 'd-2']);
    expect(filter('gatewayListOptions.gatewayType=GATEWAY')).toEqual(['gw-1']);
    expect(filter('gatewayListOptions.gatewayType=NON_GATEWAY')).toEqual(['d-1', 'd-2']);
    expect(filter('gatewayListOptions.gatewayType=GATEWAY_TYPE_UNSPECIFIED')).toEqual(['gw-1', 'd-1', 'd-2']);
    expect(filter('gatewayListOptions.associationsGatewayId=gw-1')).toEqual(['d-2']);
    expect(filter('gateway_list_options.associations_device_id=d-2')).toEqual(['gw-1']);
  });

  it('refuses two gatewayListOptions at once, an unknown type, and an unknown device', () => {
    expect(() => gatewayListFilter(registry, 'reg', q('gatewayListOptions.gatewayType=GATEWAY&gatewayListOptions.associationsGatewayId=gw-1'))).toThrow(badArg(/only one/));
    expect(() => gatewayListFilter(registry, 'reg', q('gatewayListOptions.gatewayType=ROUTER'))).toThrow(badArg(/GATEWAY or NON_GATEWAY/));
    expect(() => gatewayListFilter(registry, 'reg', q('gatewayListOptions.associationsGatewayId=ghost'))).toThrow(expect.objectContaining({ status: 'NOT_FOUND' }));
  });
});

describe('newest', () => {
  it('lists the first n, or all for 0 or nothing', () => {
    expect(newest(['3', '2', '1'], q('numVersions=2'), 'numVersions')).toEqual(['3', '2']);
    expect(newest(['3', '2', '1'], q('numVersions=0'), 'numVersions')).toEqual(['3', '2', '1']);
    expect(newest(['3', '2', '1'], q(''), 'numStates')).toEqual(['3', '2', '1']);
    expect(() => newest([], q('numStates=x'), 'numStates')).toThrow(badArg(/numStates/));
  });
});

describe('eventFilter', () => {
  it('reads since and the registry, device and gateway, and refuses a since that is no messageId', () => {
    expect(eventFilter(q('since=7&deviceId=d-1&gatewayId=gw'))).toEqual({ since: '7', registryId: undefined, deviceId: 'd-1', gatewayId: 'gw' });
    expect(() => eventFilter(q('since=yesterday'))).toThrow(badArg(/since must be a messageId/));
  });
});
