import { describe, expect, it } from 'vitest';
import { compileTemplate, DEVICE_PLACEHOLDERS, EVENT_PLACEHOLDERS, hasPlaceholder, renderTemplate, SUBFOLDER_PLACEHOLDERS, usesTags } from '../../../lib/lorawan/templates.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

const compileError = (source: unknown, allowed: Parameters<typeof compileTemplate>[1] = DEVICE_PLACEHOLDERS): string =>
  thrownRelayError(() => compileTemplate(source, allowed, 'where'), 'ERR_CONFIG').message;

describe('compileTemplate', () => {
  it('splits the text into literals, placeholders and tags', () => {
    expect(compileTemplate('lora-{dev_eui}-{tag.row}', DEVICE_PLACEHOLDERS, 'w').parts).toEqual([{ literal: 'lora-' }, { field: 'dev_eui' }, { literal: '-' }, { tag: 'row' }]);
    expect(compileTemplate('fixed', DEVICE_PLACEHOLDERS, 'w')).toEqual({ source: 'fixed', parts: [{ literal: 'fixed' }] });
    expect(compileTemplate('{device_id}{application_id}', DEVICE_PLACEHOLDERS, 'w').parts).toEqual([{ field: 'device_id' }, { field: 'application_id' }]);
  });

  it('refuses unknown placeholders and unbalanced braces, naming what may be used', () => {
    expect(compileError('{f_port}')).toBe('where: unknown placeholder {f_port}; use {device_id}, {dev_eui}, {application_id}, {tag.<key>}');
    expect(compileError('{event}', SUBFOLDER_PLACEHOLDERS)).toMatch(/unknown placeholder \{event\}; use .*\{f_port\}$/);
    expect(compileError('{tag}')).toMatch(/unknown placeholder \{tag\}/);
    expect(compileError('{}')).toMatch(/unknown placeholder \{\}/);
    expect(compileError('{device_id')).toBe('where: "{" without "}" in "{device_id"');
    expect(compileError('a}{device_id}')).toBe('where: "}" without "{" in "a}{device_id}"');
    expect(compileError('{device_id}}')).toBe('where: "}" without "{" in "{device_id}}"');
  });

  it('takes tag keys of up to 64 of [A-Za-z0-9_.-], where tags are allowed', () => {
    expect(compileTemplate(`{tag.${'k'.repeat(64)}}`, DEVICE_PLACEHOLDERS, 'w').parts).toEqual([{ tag: 'k'.repeat(64) }]);
    expect(compileError(`{tag.${'k'.repeat(65)}}`)).toBe(`where: {tag.${'k'.repeat(65)}} names no valid tag key`);
    expect(compileError('{tag.a b}')).toMatch(/names no valid tag key/);
    expect(compileError('{tag.}')).toMatch(/names no valid tag key/);
    expect(compileError('{tag.row}', ['device_id'])).toBe('where: {tag.row} is not available here');
  });

  it('refuses a template that is empty, too long or not text', () => {
    for (const source of ['', 'x'.repeat(257), 7, undefined]) expect(compileError(source)).toBe('where must be a template of 1 to 256 characters');
    expect(compileTemplate('x'.repeat(256), DEVICE_PLACEHOLDERS, 'w').source).toHaveLength(256);
  });
});

describe('hasPlaceholder and usesTags', () => {
  it('tell a fixed text and a template with tags apart', () => {
    const fixed = compileTemplate('one-device', DEVICE_PLACEHOLDERS, 'w');
    const tagged = compileTemplate('x-{tag.id}', DEVICE_PLACEHOLDERS, 'w');
    const plain = compileTemplate('x-{dev_eui}', DEVICE_PLACEHOLDERS, 'w');
    expect([hasPlaceholder(fixed), hasPlaceholder(tagged), hasPlaceholder(plain)]).toEqual([false, true, true]);
    expect([usesTags(fixed), usesTags(tagged), usesTags(plain)]).toEqual([false, true, false]);
  });
});

describe('renderTemplate', () => {
  it('fills placeholders and tags', () => {
    const t = compileTemplate('lora-{dev_eui}-{tag.row}', DEVICE_PLACEHOLDERS, 'deviceId');
    expect(renderTemplate(t, { dev_eui: '70b3d57ed0061a2c', tags: { row: '7' } }, 'deviceId')).toBe('lora-70b3d57ed0061a2c-7');
    const s = compileTemplate('lorawan/{f_port}', SUBFOLDER_PLACEHOLDERS, 'subfolder');
    expect(renderTemplate(s, { f_port: 2 }, 'subfolder')).toBe('lorawan/2');
    expect(renderTemplate(s, { f_port: 0 }, 'subfolder')).toBe('lorawan/0');
    const e = compileTemplate('lorawan/{event}', EVENT_PLACEHOLDERS, 'eventSubfolder');
    expect(renderTemplate(e, { event: 'join' }, 'eventSubfolder')).toBe('lorawan/join');
  });

  it('names the placeholder an uplink has no value for, and where that value would come from', () => {
    const t = compileTemplate('lora-{dev_eui}', DEVICE_PLACEHOLDERS, 'deviceId');
    const missing = thrownRelayError(() => renderTemplate(t, { dev_eui: '' }, 'x.deviceId'), 'ERR_INVALID_FIELD');
    expect(missing.field).toBe('x.deviceId');
    expect(missing.message).toBe('x.deviceId "lora-{dev_eui}" needs the DevEUI (end_device_ids.dev_eui, deviceInfo.devEui), which the message does not carry');
    const tag = compileTemplate('{tag.iotcore_id}', DEVICE_PLACEHOLDERS, 'deviceId');
    expect(thrownRelayError(() => renderTemplate(tag, { tags: {} }, 'deviceId'), 'ERR_INVALID_FIELD').message).toBe(
      'deviceId "{tag.iotcore_id}" needs the tag "iotcore_id", which the device does not have',
    );
    expect(() => renderTemplate(tag, { tags: { iotcore_id: '' } }, 'deviceId')).toThrow(/needs the tag "iotcore_id"/);
    expect(() => renderTemplate(tag, {}, 'deviceId')).toThrow(/needs the tag "iotcore_id"/);
  });
});
