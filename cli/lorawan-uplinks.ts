/**
 * Realistic uplink webhooks, shaped as The Things Stack v3 (JSON webhook, `uplink_message`) and ChirpStack v4 (HTTP
 * integration, JSON marshaler, `?event=up`) send them, with every field their documented examples carry: identifiers,
 * correlation or deduplication IDs, the frame, a decoded payload, two gateways' radio metadata and the transmission
 * settings. `iotcore-relay send --lorawan` posts them; the local stack's demo devices are the defaults.
 *
 * @example
 * const body = ttsUplink({ fCnt: 42, payload: Buffer.from([1, 2]) });
 * const body2 = chirpstackUplink({ fCnt: 42, payload: Buffer.from([1, 2]) }); // post to <url>?event=up
 */
import { randomBytes, randomUUID } from 'node:crypto';

/** The local stack's demo devices and integrations (local/lorawan-demo.ts), the defaults of the command. */
export const DEMO_LORAWAN = {
  tts: {
    integration: 'ttn-demo',
    applicationId: 'relay-demo',
    deviceId: 'soil-probe-01',
    devEui: '70B3D57ED005A1B2',
    webhookId: 'iotcore-relay',
  },
  chirpstack: {
    integration: 'chirpstack-demo',
    applicationId: '2b7e1f4c-9a3d-4c8e-b5f6-0d1e2f3a4b5c',
    deviceName: 'soil-probe-02',
    devEui: '0004a30b001c0531',
  },
} as const;

export interface UplinkOptions {
  /** The Things Stack's device ID; ChirpStack's device name. */
  deviceId?: string;
  devEui?: string;
  applicationId?: string;
  fPort?: number;
  fCnt?: number;
  payload?: Buffer;
  /** What a payload formatter (codec) made of the payload; none when undefined. */
  decoded?: Record<string, unknown> | undefined;
  time?: Date;
}

/** A soil probe's reading: moisture (%), temperature (0.1 °C), battery (mV). */
export function sampleReading(fCnt: number): { payload: Buffer; decoded: Record<string, unknown> } {
  const moisture = 30 + (fCnt % 40);
  const tenths = 180 + ((fCnt * 7) % 60);
  const battery = 3300 - (fCnt % 200);
  const payload = Buffer.alloc(5);
  payload.writeUInt8(moisture, 0);
  payload.writeInt16BE(tenths, 1);
  payload.writeUInt16BE(battery, 3);
  return { payload, decoded: { moisture, temperature: tenths / 10, battery_mv: battery } };
}

/** A ULID-like correlation ID, as The Things Stack's components mint them. */
function ulid(): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  return [...randomBytes(26)].map((b) => alphabet[b % 32]).join('');
}

export function ttsUplink(options: UplinkOptions = {}): Record<string, unknown> {
  const demo = DEMO_LORAWAN.tts;
  const fCnt = options.fCnt ?? 1;
  const sample = sampleReading(fCnt);
  const payload = options.payload ?? sample.payload;
  const decoded = options.payload === undefined ? sample.decoded : options.decoded;
  const at = options.time ?? new Date();
  const gatewayTime = new Date(at.getTime() - 230).toISOString();
  const uplink: Record<string, unknown> = {
    session_key_id: 'AZHb8kX1cW9pQ2rS4tU6vw==',
    f_port: options.fPort ?? 2,
    f_cnt: fCnt,
    frm_payload: payload.toString('base64'),
    ...(decoded !== undefined ? { decoded_payload: decoded } : {}),
    rx_metadata: [
      {
        gateway_ids: { gateway_id: 'gw-field-north', eui: 'B827EBFFFE8A1C22' },
        time: gatewayTime,
        timestamp: 2903481022,
        rssi: -94,
        channel_rssi: -94,
        snr: 8.5,
        uplink_token: randomBytes(36).toString('base64'),
        channel_index: 2,
        received_at: new Date(at.getTime() - 210).toISOString(),
      },
      {
        gateway_ids: { gateway_id: 'gw-barn', eui: 'A840411F2E3C4150' },
        time: gatewayTime,
        timestamp: 118207415,
        rssi: -109,
        channel_rssi: -109,
        snr: -2.25,
        uplink_token: randomBytes(36).toString('base64'),
        channel_index: 2,
        received_at: new Date(at.getTime() - 195).toISOString(),
      },
    ],
    settings: {
      data_rate: { lora: { bandwidth: 125000, spreading_factor: 7, coding_rate: '4/5' } },
      frequency: '868500000',
      timestamp: 2903481022,
      time: gatewayTime,
    },
    received_at: new Date(at.getTime() - 180).toISOString(),
    consumed_airtime: '0.051456s',
    network_ids: { net_id: '000013', ns_id: 'EC656E0000000101', tenant_id: 'ttn', cluster_id: 'eu1', cluster_address: 'eu1.cloud.thethings.network' },
  };
  // The Things Stack leaves out fields holding their default value.
  if (fCnt === 0) delete uplink.f_cnt;
  return {
    end_device_ids: {
      device_id: options.deviceId ?? demo.deviceId,
      application_ids: { application_id: options.applicationId ?? demo.applicationId },
      dev_eui: (options.devEui ?? demo.devEui).toUpperCase(),
      join_eui: '0000000000000000',
      dev_addr: '260B8C4E',
    },
    correlation_ids: [`as:up:${ulid()}`, `gs:conn:${ulid()}`, `gs:uplink:${ulid()}`, `ns:uplink:${ulid()}`, `rpc:/ttn.lorawan.v3.GsNs/HandleUplink:${ulid()}`],
    received_at: at.toISOString(),
    uplink_message: uplink,
  };
}

export function chirpstackUplink(options: UplinkOptions = {}): Record<string, unknown> {
  const demo = DEMO_LORAWAN.chirpstack;
  const fCnt = options.fCnt ?? 1;
  const sample = sampleReading(fCnt);
  const payload = options.payload ?? sample.payload;
  const decoded = options.payload === undefined ? sample.decoded : options.decoded;
  const at = options.time ?? new Date();
  const event: Record<string, unknown> = {
    deduplicationId: randomUUID(),
    time: at.toISOString(),
    deviceInfo: {
      tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242',
      tenantName: 'ChirpStack',
      applicationId: options.applicationId ?? demo.applicationId,
      applicationName: 'relay-demo',
      deviceProfileId: '8d3b0c6e-1f2a-4b5c-9d7e-6f8a0b1c2d3e',
      deviceProfileName: 'soil probe (EU868)',
      deviceName: options.deviceId ?? demo.deviceName,
      devEui: (options.devEui ?? demo.devEui).toLowerCase(),
      deviceClassEnabled: 'CLASS_A',
      tags: { site: 'demo-field' },
    },
    devAddr: '01a2b3c4',
    adr: true,
    dr: 5,
    fCnt,
    fPort: options.fPort ?? 2,
    data: payload.toString('base64'),
    ...(decoded !== undefined ? { object: decoded } : {}),
    rxInfo: [
      {
        gatewayId: 'b827ebfffe8a1c22',
        uplinkId: randomBytes(4).readUInt32BE(0),
        gwTime: new Date(at.getTime() - 230).toISOString(),
        nsTime: new Date(at.getTime() - 210).toISOString(),
        rssi: -94,
        snr: 8.5,
        channel: 2,
        location: { latitude: 52.3731, longitude: 4.8922 },
        context: randomBytes(4).toString('base64'),
        metadata: { region_config_id: 'eu868', region_common_name: 'EU868' },
        crcStatus: 'CRC_OK',
      },
      {
        gatewayId: 'a840411f2e3c4150',
        uplinkId: randomBytes(4).readUInt32BE(0),
        nsTime: new Date(at.getTime() - 195).toISOString(),
        rssi: -109,
        snr: -2.25,
        channel: 2,
        rfChain: 1,
        context: randomBytes(4).toString('base64'),
        metadata: { region_config_id: 'eu868', region_common_name: 'EU868' },
        crcStatus: 'CRC_OK',
      },
    ],
    txInfo: { frequency: 868500000, modulation: { lora: { bandwidth: 125000, spreadingFactor: 7, codeRate: 'CR_4_5' } } },
    regionConfigId: 'eu868',
  };
  // ChirpStack leaves out fields holding their default value.
  if (fCnt === 0) delete event.fCnt;
  return event;
}
