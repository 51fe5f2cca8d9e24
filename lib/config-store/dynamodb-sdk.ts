/**
 * The part of the DynamoDB SDK the config store uses, as an ES module of our own that `ConfigStore` loads with
 * `import()` at its first call to the table (config-store.ts).
 *
 * Why not `import('@aws-sdk/client-dynamodb')` directly: the packages are CommonJS, and the deployed bundle puts what
 * a handler loads on demand into chunks of its own (deploy/handler-chunks-plugin.cjs). A chunk made from a CommonJS
 * package exposes only `default`, so its named exports would be missing; the static imports here get esbuild's usual
 * CommonJS interop, and this module's exports are plain ES exports wherever it runs.
 */
export { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
export { BatchGetCommand, DynamoDBDocumentClient, GetCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
