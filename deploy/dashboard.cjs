/**
 * The CloudWatch dashboard of a stage, as the body of serverless.yml's `RelayDashboard` (AWS::CloudWatch::Dashboard).
 * The body is a JSON text for `Fn::Sub`: CloudFormation puts in the stack's own names, `${RelayQueue.QueueName}`,
 * `${RelayLambdaFunction}`, `${HttpApi}`, `${AWS::Region}`, and serverless.yml gives `${Namespace}` and `${Service}`,
 * where the handlers' Powertools Metrics write (POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME), and the
 * alarms' ARNs.
 *
 * What it shows, top to bottom: the alarms; records confirmed, retried and dead-lettered, and failures by code;
 * gateway sessions and how long they take; the bridge's errors by type; the relay queue's oldest message and depth;
 * the dead-letter queue's depth; the ingest's answers by class (the handler's counts and API Gateway's 4xx/5xx,
 * throttling included); config versions received from the bridge and delivered to devices; the functions' errors
 * and throttles. docs/deploy.md, "Read the logs and metrics", says what to do about each.
 *
 * test/deploy/template.test.ts checks the packaged result: valid JSON once substituted, every metric one the code
 * emits (read from its addMetric calls), every queue, function and API one of the stack's own resources.
 *
 * CommonJS (.cjs) because the framework loads variable files with require().
 *
 * @example
 * // serverless.yml
 * DashboardBody:
 *   Fn::Sub:
 *     - ${file(./deploy/dashboard.cjs):body}
 *     - Namespace: IotCoreRelay
 *       Service: iotcore-relay
 */
'use strict';

/** Five minutes: the alarms' period, and SQS's own metrics come once a minute at best. */
const PERIOD = 300;
const APP = '${Namespace}';
const SERVICE = ['service', '${Service}'];

/** One of the relay's own metrics (dimension `service` only, as Powertools writes it), with its rendering. */
const own = (name, options = {}) => [APP, name, ...SERVICE, options];
/** A metric of an AWS service, on one of the stack's resources. */
const aws = (namespace, name, dimension, value, options = {}) => [namespace, name, dimension, value, options];
/** Every value of a metric the relay writes with one more dimension (`code`, `errorType`), one line each. */
const byDimension = (name, dimension, id) => ({
  expression: `SEARCH('{${APP},service,${dimension}} MetricName="${name}" service="\${Service}"', 'Sum', ${PERIOD})`,
  id,
  label: '',
});

const FUNCTIONS = ['RelayLambdaFunction', 'IngestLambdaFunction', 'ConfigLambdaFunction', 'PollLambdaFunction', 'LorawanLambdaFunction'];
const RELAY_QUEUE = '${RelayQueue.QueueName}';
const DEAD_LETTER_QUEUE = '${RelayDeadLetterQueue.QueueName}';

const WIDTH = 8;
const HEIGHT = 6;

/** A metric graph; `x`, `y` in the dashboard's 24-column grid. */
function graph(title, x, y, metrics, properties = {}) {
  return {
    type: 'metric',
    x,
    y,
    width: WIDTH,
    height: HEIGHT,
    properties: { title, view: 'timeSeries', stacked: false, region: '${AWS::Region}', period: PERIOD, stat: 'Sum', metrics, ...properties },
  };
}

function widgets() {
  return [
    {
      type: 'alarm',
      x: 0,
      y: 0,
      width: 24,
      height: 2,
      properties: {
        title: 'Alarms (docs/deploy.md, "Read the logs and metrics", says what to do about each)',
        alarms: ['${DeadLetterQueueNotEmptyAlarm.Arn}', '${RelayErrorsAlarm.Arn}', '${OldestMessageAgeAlarm.Arn}'],
      },
    },

    graph('Records: confirmed, retried, dead-lettered', 0, 2, [
      own('RecordsReceived', { label: 'received' }),
      own('RecordsConfirmed', { label: 'confirmed' }),
      own('RecordsFailedBack', { label: 'retried' }),
      own('RecordsDeadLettered', { label: 'dead-lettered' }),
    ]),
    graph('Records not confirmed, by code', 8, 2, [[byDimension('RecordFailures', 'code', 'codes')]]),
    graph('Gateway errors by type (the bridge\'s errors topic)', 16, 2, [[byDimension('GatewayErrors', 'errorType', 'errors')]]),

    graph('Gateway sessions', 0, 8, [own('Sessions', { label: 'sessions' }), own('SessionsEndedEarly', { label: 'ended early' })]),
    graph(
      'Session duration (ms)',
      8,
      8,
      [
        own('SessionDuration', { stat: 'p50', label: 'p50' }),
        own('SessionDuration', { stat: 'p99', label: 'p99' }),
        own('SessionDuration', { stat: 'Maximum', label: 'max' }),
        own('ConnectLatency', { stat: 'p50', label: 'connect p50' }),
      ],
      { yAxis: { left: { min: 0, label: 'ms', showUnits: false } } },
    ),
    graph(
      'Functions: errors and throttles',
      16,
      8,
      FUNCTIONS.flatMap((fn) => [
        aws('AWS/Lambda', 'Errors', 'FunctionName', `\${${fn}}`, { label: `${fn.replace('LambdaFunction', '').toLowerCase()} errors` }),
        aws('AWS/Lambda', 'Throttles', 'FunctionName', `\${${fn}}`, { label: `${fn.replace('LambdaFunction', '').toLowerCase()} throttles` }),
      ]),
    ),

    graph('Relay queue: oldest message (s)', 0, 14, [aws('AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', RELAY_QUEUE, { stat: 'Maximum', label: 'oldest message' })], {
      yAxis: { left: { min: 0, label: 's', showUnits: false } },
    }),
    graph('Relay queue: depth', 8, 14, [
      aws('AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', RELAY_QUEUE, { stat: 'Maximum', label: 'waiting' }),
      aws('AWS/SQS', 'ApproximateNumberOfMessagesNotVisible', 'QueueName', RELAY_QUEUE, { stat: 'Maximum', label: 'in flight or backing off' }),
    ]),
    graph('Dead-letter queue: depth', 16, 14, [
      aws('AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', DEAD_LETTER_QUEUE, { stat: 'Maximum', label: 'dead letters' }),
      aws('AWS/SQS', 'NumberOfMessagesSent', 'QueueName', DEAD_LETTER_QUEUE, { label: 'parked by the relay' }),
    ]),

    graph('Ingest answers: 2xx, 4xx, 5xx', 0, 20, [
      own('IngestAccepted', { label: 'accepted (2xx)' }),
      own('IngestRefused', { label: 'refused (4xx)' }),
      own('IngestFailed', { label: 'failed (5xx)' }),
      aws('AWS/ApiGateway', '4xx', 'ApiId', '${HttpApi}', { label: 'HTTP API 4xx (throttled and unknown routes too)' }),
      aws('AWS/ApiGateway', '5xx', 'ApiId', '${HttpApi}', { label: 'HTTP API 5xx' }),
    ]),
    graph('Config versions: received from the bridge, delivered to devices', 8, 20, [
      own('ConfigsChanged', { label: 'new versions received' }),
      own('ConfigsDelivered', { label: 'delivered to devices' }),
      own('ConfigPollJobsEnqueued', { label: 'poll jobs enqueued' }),
    ]),
    graph('Config polls', 16, 20, [
      own('DevicesPolled', { label: 'devices polled' }),
      own('ConfigsMissing', { label: 'no config answered' }),
      own('ConfigsNotStored', { label: 'not stored' }),
    ]),

    graph('LoRaWAN webhooks: uplinks in, refused', 0, 26, [
      own('LoRaWANUplinksQueued', { label: 'uplinks queued' }),
      own('LoRaWANEventsRelayed', { label: 'other events relayed' }),
      own('LoRaWANRequestsRefused', { label: 'requests refused (4xx, 5xx)' }),
    ]),
    graph('LoRaWAN downlinks: configs sent to network servers', 8, 26, [
      own('LoRaWANDownlinksSent', { label: 'accepted by the network server' }),
      own('LoRaWANDownlinksTooLarge', { label: 'too large for a frame' }),
      own('LoRaWANDownlinksFailed', { label: 'failed' }),
    ]),
  ];
}

/** The dashboard body for `Fn::Sub`. */
function body() {
  return JSON.stringify({ start: '-PT6H', periodOverride: 'inherit', widgets: widgets() });
}

module.exports = { body };
