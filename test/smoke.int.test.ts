import assert from 'node:assert/strict';
import { startTestServer, signedIn, type TestServer } from './http.ts';

describe('api smoke', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('signs in locally, creates a personal team, and creates an app', async () => {
    const ada = await signedIn(server.url, 'ada');
    const me = await ada.get('/api/me');
    assert.equal(me.status, 200);
    assert.deepEqual(
      me.body.teams.map((t: { slug: string; role: string }) => [t.slug, t.role]),
      [['ada', 'owner']],
    );
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web-one', source: { type: 'git', url: 'file:///tmp/x.git', branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.internalPort, 8080);
    const list = await ada.get('/api/teams/ada/apps');
    assert.deepEqual(
      list.body.items.map((a: { slug: string }) => a.slug),
      ['web-one'],
    );
    assert.equal(list.body.next, null);
  });
});
