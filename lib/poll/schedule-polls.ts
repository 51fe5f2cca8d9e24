/**
 * One run of the scheduled poller: gather the devices to poll (the configured list, plus every device the relay
 * relayed for within the recent window), plan their jobs per gateway, and enqueue them.
 *
 * @example
 * const summary = await scheduleConfigPolls({ store, sqs }, pollSettingsFromEnv(process.env), new Date(event.time));
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { ConfigStore } from '../config-store/config-store.js';
import { enqueuePollJobs } from './enqueue-polls.js';
import { planPollJobs } from './poll-plan.js';
import type { PollSettings } from './poll-settings.js';

export interface PollSources {
  store: Pick<ConfigStore, 'recentlyRelayed'>;
  sqs: SQSClient;
}

export interface PollSummary {
  /** Distinct devices polled, gateways excluded. */
  devices: number;
  jobs: number;
  /** Devices from POLL_DEVICE_IDS, and found as recently relayed (a device may be in both). */
  configured: number;
  recent: number;
  gateways: { gatewayId: string; devices: number; jobs: number }[];
}

const HOUR_MS = 3_600_000;

export async function scheduleConfigPolls(sources: PollSources, settings: PollSettings, scheduledAt: Date): Promise<PollSummary> {
  // The window is measured from the schedule time, not from now, so a retried invocation looks at the same window.
  const recent = settings.recentHours > 0 ? await sources.store.recentlyRelayed(new Date(scheduledAt.getTime() - settings.recentHours * HOUR_MS)) : [];
  const devices = new Set([...settings.deviceIds, ...recent]);
  const jobs = planPollJobs(devices, { gatewayIds: settings.gatewayIds, chunkSize: settings.chunkSize, scheduledAt });
  await enqueuePollJobs(sources.sqs, settings.queueUrl, jobs);

  const gateways = new Map<string, { gatewayId: string; devices: number; jobs: number }>();
  for (const job of jobs) {
    const g = gateways.get(job.gatewayId) ?? { gatewayId: job.gatewayId, devices: 0, jobs: 0 };
    g.devices += job.deviceIds.length;
    g.jobs += 1;
    gateways.set(job.gatewayId, g);
  }
  const summary = [...gateways.values()];
  return {
    devices: summary.reduce((n, g) => n + g.devices, 0),
    jobs: jobs.length,
    configured: settings.deviceIds.length,
    recent: recent.length,
    gateways: summary,
  };
}
