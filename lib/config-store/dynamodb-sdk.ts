/**
 * The part of the DynamoDB SDK the config store uses, as an ES module of our own that `ConfigStore` loads with
 * `import()` at its first call to the table (config-store.ts). A module of ours rather than the packages themselves
 * for the reason lib/queue/sqs-sdk.ts gives: in a chunk loaded on demand, a CommonJS package would expose only
 * `default`, while the static imports here get esbuild's usual CommonJS interop.
 */
export { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
export { BatchGetCommand, DynamoDBDocumentClient, GetCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
