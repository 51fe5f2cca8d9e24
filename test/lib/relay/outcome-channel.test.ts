import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { publishRelayOutcomes, RELAY_OUTCOMES_CHANNEL, type RelayOutcomesMessage } from '../../../lib/relay/outcome-channel.js';
import { confirmed, failed } from '../../../lib/relay/outcomes.js';

const received: unknown[] = [];
const listener = (message: unknown): void => void received.push(message);
afterEach(() => {
  unsubscribe(RELAY_OUTCOMES_CHANNEL, listener);
  received.length = 0;
});

describe('publishRelayOutcomes', () => {
  it('hands the message as it is to whoever subscribed to the channel by its name', () => {
    subscribe(RELAY_OUTCOMES_CHANNEL, listener);
    const message: RelayOutcomesMessage = { outcomes: [confirmed('m-1', { deviceId: 'pump-01' }), failed('m-2', 'ERR_PUBACK_TIMEOUT', 'no PUBACK')] };
    publishRelayOutcomes(message);
    publishRelayOutcomes({ outcomes: [] });
    expect(received).toHaveLength(2);
    expect(received[0]).toBe(message);
    expect(received[1]).toEqual({ outcomes: [] });
  });
});
