// Small parts of the local runtime: Go durations, the image store, and the spec validator itself.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { flyAppNameForSlug } from '../backend/providers/fly/names.ts';
import { isLocalAddress } from '../local/certificates.ts';
import { parseDuration } from '../local/durations.ts';
import { imageDir, importImage, readImage } from '../local/images.ts';
import { hostOf } from '../local/router.ts';
import { findPathTemplate, validateResponse } from './support/fly-spec.ts';

describe('local runtime: parts', () => {
  it('reads Go durations, and a bare number as nanoseconds', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration(30), 0.00003);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('10'), 0.00001);
    assert.equal(parseDuration('ten seconds'), undefined);
    assert.equal(parseDuration('10s5'), undefined);
  });

  it('imports a directory as an image, replacing the same tag whole', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-images-'));
    const source = mkdtempSync(path.join(os.tmpdir(), 'rhone-src-'));
    writeFileSync(path.join(source, 'a.txt'), 'one');
    const first = await importImage(dataDir, 'web', 'v1', source, { cmd: ['node', 'a.js'], env: { A: '1' } });
    assert.equal(first.ref, 'rhone-local/web:v1');
    assert.equal(first.dir, imageDir(dataDir, 'rhone-local/web:v1'));
    assert.equal(first.dir, path.join(dataDir, 'images', 'web', 'v1'));
    const manifest = JSON.parse(readFileSync(path.join(first.dir, 'rhone-image.json'), 'utf8'));
    assert.deepEqual([manifest.cmd, manifest.env], [['node', 'a.js'], { A: '1' }]);
    assert.ok(!Number.isNaN(Date.parse(manifest.createdAt)));

    writeFileSync(path.join(source, 'a.txt'), 'two');
    await importImage(dataDir, 'web', 'v1', source, { cmd: ['node', 'b.js'] });
    const again = await readImage(dataDir, 'rhone-local/web:v1');
    assert.deepEqual(again.manifest.cmd, ['node', 'b.js']);
    assert.equal(readFileSync(path.join(again.dir, 'a.txt'), 'utf8'), 'two');

    await assert.rejects(readImage(dataDir, 'rhone-local/web:v2'), /was not found in the local image store/);
    await assert.rejects(readImage(dataDir, 'registry.fly.io/web:v1'), /not a local image/);
    await assert.rejects(importImage(dataDir, '../escape', 'v1', source, { cmd: ['x'] }), /not a valid/);
    await Promise.all([dataDir, source].map((d) => rm(d, { recursive: true, force: true })));
  });

  it('counts loopback and this host as local addresses for certificates', () => {
    assert.ok(isLocalAddress('127.0.0.1'));
    assert.ok(isLocalAddress('127.8.0.5'));
    assert.ok(isLocalAddress('::1'));
    assert.ok(isLocalAddress('::ffff:127.0.0.1'));
    assert.ok(!isLocalAddress('203.0.113.9'));
  });

  it('names Fly apps after slugs and reads Host headers', () => {
    assert.equal(flyAppNameForSlug('shop'), 'rhone-shop');
    assert.equal(hostOf('Shop.LocalHost:8080'), 'shop.localhost');
    assert.equal(hostOf('[::1]:8080'), '[::1]');
  });

  it('validates answers against the spec, and rejects ones that do not match', () => {
    assert.equal(findPathTemplate('GET', '/v1/apps/a/machines/m/wait'), '/v1/apps/{app_name}/machines/{machine_id}/wait');
    validateResponse('GET', '/v1/apps/{app_name}/machines/{machine_id}', 200, { id: 'm', state: 'started', events: [{ timestamp: 1 }] });
    assert.throws(() => validateResponse('GET', '/v1/apps/{app_name}/machines/{machine_id}', 200, { id: 5 }), /id must be string/);
    assert.throws(() => validateResponse('POST', '/v1/apps', 422, { error: 'x', status: 'bogus' }), /allowed values/);
    assert.throws(() => validateResponse('POST', '/v1/apps', 200, {}), /lists no 200/);
  });
});
