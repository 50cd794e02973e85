// Fly app names are global across all of Fly: an app's name is given once, with a random suffix,
// stored, and used everywhere; a new app that reuses a deleted app's slug gets another one. Until
// the apps domain is routed, the URL Rhone shows for a production app is the one Fly answers on.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { getConfig } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { App, Team } from '../backend/models/index.ts';
import { deleteApp } from '../backend/commands/apps.ts';
import { appUrl, presentApp } from '../backend/presenters/index.ts';
import { isFlyAppNameOfSlug } from '../backend/providers/fly/names.ts';
import { makeApp, makeUser } from './factories.ts';

describe('Fly app names', () => {
  it('are stored per app, not derived from the slug alone, and a reused slug gets a new one', async () => {
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const first = await makeApp(ada, team, 'shop');
    assert.match(first.flyAppName, /^rhone-shop-[a-z0-9]{8}$/);
    assert.equal((await App.query(db()).findById(first.id))?.flyAppName, first.flyAppName, 'stored');
    assert.ok(isFlyAppNameOfSlug(first.flyAppName, 'shop'));
    const queues = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `test-${randomUUID()}` };
    await deleteApp(db(), queues, { user: ada, via: 'session' }, team, first);
    const second = await makeApp(ada, team, 'shop');
    assert.notEqual(second.flyAppName, first.flyAppName, 'the new app of the same slug does not inherit the Fly app');
  });

  it('give a production app the URL Fly answers on, <fly app>.fly.dev; local mode keeps {slug}.localhost', async () => {
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'shop');
    // RHONE_APPS_DOMAIN not set: no edge routes the apps domain yet.
    const production = { ...getConfig(), isLocal: false, appsDomain: 'rhone.app', appsDomainRouted: false };
    assert.equal(presentApp(production, app, team).url, `https://${app.flyAppName}.fly.dev`);
    assert.equal(appUrl(production, app), `https://${app.flyAppName}.fly.dev`);
    const local = { ...getConfig(), isLocal: true, appsDomain: 'localhost', routerPort: 4001 };
    assert.equal(presentApp(local, app, team).url, 'http://shop.localhost:4001');
  });
});
