/**
 * The part of @aws-sdk/client-sqs the queue producer and the relay's queue actions use, as an ES module of our own
 * that they load with `import()` at first use (`loadSqsSdk` in queue-producer.ts).
 *
 * Why not `import('@aws-sdk/client-sqs')` directly: the package is CommonJS, and the deployed bundle puts what a
 * handler loads on demand into chunks of its own (deploy/handler-chunks-plugin.cjs). A chunk made from a CommonJS
 * package exposes only `default`, so its named exports would be missing; the static imports here get esbuild's
 * usual CommonJS interop, and this module's exports are plain ES exports wherever it runs.
 */
export { ChangeMessageVisibilityBatchCommand, SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
