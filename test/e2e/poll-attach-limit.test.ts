/**
 * Poll jobs of one gateway that together name more devices than a gateway may have attached at once (1,000,
 * docs/protocol.md §3.1): the relay serves what fits in one session and hands the rest straight back to the
 * queue, so the gateway's next batch serves it. The bridge never has to refuse an attach for the limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ATTACHED_PER_GATEWAY } from '../../lib/iotcore/limits.js';
import { startRelayPipeline, type RelayPipeline } from './relay-pipeline.js';

const GATEWAY = 'gw-fleet';
const DEVICES = Array.from({ length: 1200 }, (_, i) => `meter-${String(i).padStart(4, '0')}`);

let pipeline: RelayPipeline;

beforeAll(async () => {
  pipeline = await startRelayPipeline(
    { gateways: [{ id: GATEWAY, bound: DEVICES }], devices: DEVICES.map((id) => ({ id, keyless: true })) },
    // 600 configs in one session: the pipeline's 2 s wait for them is short on a loaded machine, and this test is
    // about the attach limit, not about how fast configs come.
    { env: { POLL_DEVICE_IDS: DEVICES.join(','), POLL_CHUNK_SIZE: '600', RELAY_CONFIG_TIMEOUT_MS: '15000' } },
  );
});
afterAll(() => pipeline.close());

describe(`poll jobs over ${MAX_ATTACHED_PER_GATEWAY} devices`, () => {
  it('run one batch after another, each within the limit, until every config is stored', async () => {
    expect((await pipeline.poll({ time: '2025-01-01T06:00:00Z' })).jobs).toBe(2);

    const first = await pipeline.relayQueueOnce();
    // Both jobs came in one batch; the second would have gone over the limit and was handed back.
    expect(first.records).toHaveLength(2);
    expect(first.response?.batchItemFailures).toEqual([{ itemIdentifier: first.records[1]!.messageId }]);

    // Visible again at once: no visibility timeout holds the gateway's message group.
    const second = await pipeline.relayQueueOnce();
    expect(second.records.map((r) => r.messageId)).toEqual([first.records[1]!.messageId]);
    expect(second.response).toEqual({ batchItemFailures: [] });

    expect(pipeline.emulator.registry.errors).toEqual([]);
    const stored = await pipeline.store.getConfigs(DEVICES);
    expect(stored.size).toBe(DEVICES.length);
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
    expect(pipeline.emulator.takeovers).toBe(0);
  });
});
