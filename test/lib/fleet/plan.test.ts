import { describe, expect, it } from 'vitest';
import {
  MAX_DEVICES_PER_GATEWAY,
  MAX_GATEWAYS_PER_DEVICE,
  finishRemovals,
  planFleet,
  type Binding,
  type RegistryState,
} from '../../../lib/fleet/plan.js';
import { gatewayFor, parseGatewayIds } from '../../../lib/gateway-pool.js';

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

/** A registry holding these gateways and devices, each device bound as `bind` says. */
function registry(gateways: readonly string[], devices: readonly string[], bind: (d: string) => readonly string[] = () => [], marked: readonly string[] = []): RegistryState {
  const bindings = new Map<string, string[]>();
  for (const d of devices) {
    for (const g of bind(d)) {
      const list = bindings.get(g) ?? [];
      list.push(d);
      bindings.set(g, list);
    }
  }
  return {
    devices: new Set(devices),
    gateways: new Map([...gateways, ...marked].map((g) => [g, { marked: marked.includes(g) }])),
    bindings,
  };
}

/** The bindings once apply and --finish are done, as device -> gateways. */
function afterPlan(state: RegistryState, plan: ReturnType<typeof planFleet>): Map<string, Set<string>> {
  const of = new Map<string, Set<string>>();
  for (const [g, ds] of state.bindings) for (const d of ds) (of.get(d) ?? of.set(d, new Set()).get(d)!).add(g);
  for (const b of plan.bindingsToAdd) (of.get(b.deviceId) ?? of.set(b.deviceId, new Set()).get(b.deviceId)!).add(b.gatewayId);
  for (const b of plan.bindingsToRemove) of.get(b.deviceId)?.delete(b.gatewayId);
  return of;
}

describe('planFleet from an empty registry', () => {
  const pool = parseGatewayIds('gw-{0..9}');
  const devices = ids('sensor', 2000);

  it('creates the pool and the devices of a device file and binds each device to exactly its gateway', () => {
    const state = registry([], []);
    const plan = planFleet({ pool, devices, devicesFrom: 'file', state });
    expect(plan.gatewaysToCreate).toEqual(pool);
    expect(plan.devicesToCreate).toEqual(devices);
    expect(plan.bindingsToAdd).toHaveLength(devices.length);
    for (const b of plan.bindingsToAdd) expect(b.gatewayId).toBe(gatewayFor(b.deviceId, pool));
    expect(plan.bindingsToRemove).toEqual([]);
    expect(plan.violations).toEqual([]);
    expect(Object.values(plan.finalDevicesPerGateway).reduce((a, b) => a + b, 0)).toBe(devices.length);
  });

  it('plans nothing once its own result is the registry', () => {
    const state = registry(pool, devices, (d) => [gatewayFor(d, pool)]);
    const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
    expect([plan.gatewaysToCreate, plan.devicesToCreate, plan.bindingsToAdd, plan.bindingsToRemove]).toEqual([[], [], [], []]);
  });
});

describe('planFleet when the pool changes', () => {
  const devices = ids('meter', 5000);

  it('going from N to N+1 gateways rebinds at most 1/(N+1) + 1 % of the devices, each to the newcomer', () => {
    for (const n of [4, 10, 30]) {
      const old = parseGatewayIds(`gw-{1..${n}}`);
      const pool = parseGatewayIds(`gw-{1..${n + 1}}`);
      const state = registry(old, devices, (d) => [gatewayFor(d, old)]);
      const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
      expect(plan.gatewaysToCreate).toEqual([`gw-${n + 1}`]);
      expect(plan.bindingsToAdd.every((b) => b.gatewayId === `gw-${n + 1}`)).toBe(true);
      expect(plan.bindingsToAdd.length / devices.length).toBeLessThanOrEqual(1 / (n + 1) + 0.01);
      expect(plan.bindingsToAdd.length).toBeGreaterThan(0);
      // The moved devices lose their old binding at --finish, and nobody else loses anything.
      expect(plan.bindingsToRemove.map((b) => b.deviceId).sort()).toEqual(plan.bindingsToAdd.map((b) => b.deviceId).sort());
      const final = afterPlan(state, plan);
      for (const d of devices) expect([...final.get(d)!]).toEqual([gatewayFor(d, pool)]);
    }
  });

  it('removing a gateway moves only its devices, and --finish removes the bindings to it when it is retired or marked', () => {
    const old = parseGatewayIds('gw-{1..8}');
    const pool = old.filter((g) => g !== 'gw-5');
    const state = registry(old, devices, (d) => [gatewayFor(d, old)]);
    const onGw5 = devices.filter((d) => gatewayFor(d, old) === 'gw-5');

    const unowned = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
    expect(unowned.bindingsToAdd.map((b) => b.deviceId).sort()).toEqual([...onGw5].sort());
    // gw-5 is not in the pool, not marked and not retired: its bindings are not the tool's to remove.
    expect(unowned.bindingsToRemove).toEqual([]);
    expect(unowned.foreignBindings).toEqual({ count: onGw5.length, gateways: ['gw-5'] });

    const retired = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state, retired: ['gw-5'] });
    expect(retired.bindingsToRemove).toEqual(onGw5.map((d) => ({ deviceId: d, gatewayId: 'gw-5' })));

    const markedState = registry(old.filter((g) => g !== 'gw-5'), devices, (d) => [gatewayFor(d, old)], ['gw-5']);
    const marked = planFleet({ pool, devices: [...markedState.devices], devicesFrom: 'registry', state: markedState });
    expect(marked.bindingsToRemove).toEqual(retired.bindingsToRemove);
  });

  it('moves a fleet bound to every gateway (the old runbook) to one binding each, touching no foreign gateway', () => {
    const old = ['gw-1', 'gw-2', 'gw-3'];
    const pool = parseGatewayIds('gw-{1..6}');
    const state = registry([...old, 'edge-1'], devices.slice(0, 300), (d) => [...old, ...(d.endsWith('7') ? ['edge-1'] : [])]);
    const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
    const final = afterPlan(state, plan);
    for (const d of state.devices) {
      const want = [gatewayFor(d, pool), ...(d.endsWith('7') ? ['edge-1'] : [])].sort();
      expect([...final.get(d)!].sort()).toEqual(want);
    }
    expect(plan.bindingsToRemove.some((b) => b.gatewayId === 'edge-1')).toBe(false);
    expect(plan.foreignBindings.gateways).toEqual(['edge-1']);
  });
});

describe('planFleet limits', () => {
  it('refuses a device that would hold 11 gateways between apply and --finish', () => {
    const full = parseGatewayIds('old-{1..10}');
    const pool = ['gw-a', 'gw-b'];
    const state = registry(full, ['dev-001', 'dev-002'], (d) => (d === 'dev-001' ? full : ['old-1']));
    const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
    expect(plan.violations).toHaveLength(1);
    expect(plan.violations[0]).toMatchObject({ kind: 'gateways-per-device', id: 'dev-001', count: MAX_GATEWAYS_PER_DEVICE + 1 });
    expect(plan.peak.gatewaysPerDevice).toEqual({ id: 'dev-001', count: 11 });
  });

  it('refuses a pool too small for its devices, naming the gateways over 10,000', () => {
    const pool = ['gw-1', 'gw-2'];
    const devices = ids('d', 2 * MAX_DEVICES_PER_GATEWAY + 50);
    const plan = planFleet({ pool, devices, devicesFrom: 'file', state: registry([], []) });
    const over = plan.violations.filter((v) => v.kind === 'devices-per-gateway');
    expect(over.length).toBeGreaterThanOrEqual(1);
    for (const v of over) expect(v.count).toBeGreaterThan(MAX_DEVICES_PER_GATEWAY);
    expect(over[0]!.message).toMatch(/a pool of at least 3 gateways/);
  });

  it('counts a gateway peak with its old and new devices together', () => {
    // gw-1 holds 9,990 devices that move elsewhere, and receives 20 new ones before --finish removes the old.
    const pool = ['gw-1', 'gw-2'];
    const assign = (d: string): string => (d.startsWith('new') ? 'gw-1' : 'gw-2');
    const old = ids('old', 9990);
    const state = registry(['gw-1', 'gw-2'], [...old], () => ['gw-1']);
    const plan = planFleet({ pool, devices: [...old, ...ids('new', 20)], devicesFrom: 'file', state, assign });
    expect(plan.violations.map((v) => [v.kind, v.id, v.count])).toEqual([['devices-per-gateway', 'gw-1', 10_010]]);
    expect(plan.violations[0]!.message).toMatch(/between apply and --finish/);
  });

  it('refuses a pool ID taken by a device, and a listed device that is a gateway', () => {
    const state = registry(['gw-2'], ['gw-1', 'pump-1']);
    const plan = planFleet({ pool: ['gw-1', 'gw-2'], devices: ['pump-1', 'gw-2'], devicesFrom: 'file', state });
    expect(plan.violations.map((v) => [v.kind, v.id])).toEqual([
      ['not-a-gateway', 'gw-1'],
      ['not-a-device', 'gw-2'],
    ]);
    expect(plan.gatewaysToCreate).toEqual([]);
  });
});

describe('planFleet with a device file', () => {
  it('creates only missing devices, and leaves devices outside the file as they are', () => {
    const pool = ['gw-1', 'gw-2'];
    const state = registry(pool, ['pump-1', 'pump-2', 'spare-1'], (d) => (d === 'spare-1' ? ['gw-1', 'gw-2'] : []));
    const plan = planFleet({ pool, devices: ['pump-1', 'pump-2', 'pump-3'], devicesFrom: 'file', state });
    expect(plan.devicesToCreate).toEqual(['pump-3']);
    expect(plan.bindingsToAdd.map((b) => b.deviceId)).toEqual(['pump-1', 'pump-2', 'pump-3']);
    expect(plan.bindingsToRemove).toEqual([]);
    expect(plan.devicesOutsideSet).toBe(1);
    expect(plan.deviceCount).toBe(3);
  });
});

describe('finishRemovals', () => {
  it('keeps the old bindings of devices not yet bound to their gateway', () => {
    const old = ['gw-1', 'gw-2'];
    const pool = ['gw-1', 'gw-2', 'gw-3'];
    const devices = ids('m', 400);
    const state = registry(old, devices, (d) => [gatewayFor(d, old)]);
    const plan = planFleet({ pool, devices, devicesFrom: 'registry', state });
    expect(plan.bindingsToAdd.length).toBeGreaterThan(0);
    // Before apply: every removal waits.
    const before = finishRemovals(plan);
    expect(before.now).toEqual([]);
    expect(before.waiting).toHaveLength(plan.bindingsToRemove.length);

    // After apply added half of the new bindings: only those devices lose their old binding.
    const half = plan.bindingsToAdd.slice(0, Math.floor(plan.bindingsToAdd.length / 2));
    const applied = registry([...pool], devices, (d) => [gatewayFor(d, old), ...half.filter((b) => b.deviceId === d).map((b) => b.gatewayId)]);
    const later = finishRemovals(planFleet({ pool, devices, devicesFrom: 'registry', state: applied }));
    const expected: Binding[] = half.map((b) => ({ deviceId: b.deviceId, gatewayId: gatewayFor(b.deviceId, old) }));
    expect(later.now).toEqual(expected);
    expect(later.now.every((b) => b.gatewayId !== gatewayFor(b.deviceId, pool))).toBe(true);
  });
});
