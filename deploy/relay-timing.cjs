/**
 * The relay function's timeout and the relay queue's visibility timeout. The framework has no arithmetic, so
 * serverless.yml reads both from here (`${file(./deploy/relay-timing.cjs):...}`) and the second is computed from
 * the first: changing the timeout can never leave the queue's visibility timeout behind.
 *
 * CommonJS (.cjs) because the framework loads variable files with require().
 */
'use strict';

/**
 * Worst case of one relay invocation with the default settings of lib/relay-settings.ts, each phase bounded by its own
 * timeout (the phases of one gateway session run in order; sessions of different gateways run side by side):
 *
 *   cold start, Secrets Manager read, JWT signing ............................  ~2 s
 *   CONNECT until CONNACK                  RELAY_CONNECT_TIMEOUT_MS .........    5 s
 *   SUBSCRIBE to the errors topic          RELAY_ATTACH_TIMEOUT_MS ..........    5 s
 *   every ATTACH in flight until PUBACK    RELAY_ATTACH_TIMEOUT_MS ..........    5 s
 *   publishing and config polls, together:
 *     a batch holds at most 10 records, within one publish window of 32:
 *     PUBLISH until PUBACK                 RELAY_PUBACK_TIMEOUT_MS .......... 5 s
 *     SUBSCRIBE config + first config      RELAY_ATTACH_TIMEOUT_MS + RELAY_CONFIG_TIMEOUT_MS .. 10 s
 *                                                                  the longer:   10 s
 *   DETACH barrier, then DISCONNECT        2 x RELAY_CLOSE_TIMEOUT_MS .......    4 s
 *   grace for late errors after the barrier  RELAY_LATE_ERROR_GRACE_MS ......    0.025 s
 *   dead-letter SendMessage, ChangeMessageVisibility  RELAY_DEADLINE_MARGIN_MS   3 s
 *                                                                        total ≈ 34 s
 *
 * 60 s leaves a slow but healthy session its whole budget, with room for an SDK retry of the secret read. The
 * session never depends on the timeout being generous: it stops at the Lambda deadline minus the margin and fails
 * back what is unconfirmed. test/deploy/template.test.ts recomputes the sum from lib/relay-settings.ts, so raising a
 * default there without raising this fails a test.
 */
const relayTimeoutSeconds = 60;

/**
 * Lambda's SQS integration needs the queue's visibility timeout to be at least the function's timeout, and AWS
 * advises six times it, so that a batch retried after a throttled or failed invocation is not received twice
 * while the first attempt still runs. For a FIFO queue it is also how long a crashed invocation holds its
 * gateway's message group.
 */
const queueVisibilityTimeoutSeconds = 6 * relayTimeoutSeconds;

module.exports = { relayTimeoutSeconds, queueVisibilityTimeoutSeconds };
