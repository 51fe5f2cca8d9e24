/**
 * The relay's per-record outcomes, published on a Node diagnostics channel once a batch has been carried out, for
 * whoever in the same process wants them: the local stack's terminal lines and dashboard rows say how many records
 * were confirmed, retried and dead-lettered, and with which codes, where Lambda's response only lists the failed
 * ones. Publishing costs one `hasSubscribers` check when nobody listens, which is always the case in Lambda.
 *
 * https://nodejs.org/api/diagnostics_channel.html
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(RELAY_OUTCOMES_CHANNEL, (message) => console.log((message as RelayOutcomesMessage).outcomes));
 */
import { channel } from 'node:diagnostics_channel';
import type { RecordOutcome } from './outcomes.js';

export const RELAY_OUTCOMES_CHANNEL = 'iotcore-relay:relay-outcomes';

export interface RelayOutcomesMessage {
  /** Every record's final outcome, as carried out (a dead letter says whether it was `sent`). */
  outcomes: readonly RecordOutcome[];
}

const outcomes = channel(RELAY_OUTCOMES_CHANNEL);

export function publishRelayOutcomes(message: RelayOutcomesMessage): void {
  if (outcomes.hasSubscribers) outcomes.publish(message);
}
