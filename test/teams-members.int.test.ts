import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { Invitation, Team, TeamMember } from '../backend/models/index.ts';
import { Client, signedIn, startTestServer, type Res, type TestServer } from './http.ts';
import { permissionsOf } from '../backend/policies/index.ts';

/** Teams that invite several people are on Pro: Free has one seat (billing/plans.ts). */
const onPro = (slug: string) => db()('teams').where({ slug }).update({ plan: 'pro' });

const gitSource = { type: 'git', url: 'file:///tmp/repo.git', branch: 'main' };

type Member = { login: string; role: string };
const rolesOf = async (client: Client, team: string) =>
  Object.fromEntries(((await client.get(`/api/teams/${team}/members`)).body.items as Member[]).map((m) => [m.login, m.role]));

describe('teams and members', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('creates a personal team, owned by the user, on first sign-in only', async () => {
    const client = new Client(server.url);
    const first = await client.post('/auth/dev', { login: 'Ada-L' });
    assert.equal(first.status, 201);
    assert.equal(first.body.login, 'Ada-L');
    const me = await client.get('/api/me');
    assert.equal(me.status, 200);
    assert.deepEqual(Object.keys(me.body).sort(), ['teams', 'user']);
    assert.equal(me.body.user.login, 'Ada-L');
    assert.equal(typeof me.body.user.id, 'string');
    assert.deepEqual(me.body.teams, [{ slug: 'ada-l', name: 'Ada-L', role: 'owner', plan: 'free', personal: true, can: permissionsOf('owner') }]);

    const again = await new Client(server.url).post('/auth/dev', { login: 'Ada-L' });
    assert.equal(again.status, 200);
    assert.equal(again.body.id, me.body.user.id);
    assert.equal(await Team.query(db()).resultSize(), 1);
  });

  it('creates, renames and deletes a team; delete is refused while it has apps', async () => {
    const ada = await signedIn(server.url, 'ada');
    const created = await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    assert.equal(created.status, 201);
    assert.deepEqual(
      { ...created.body, createdAt: undefined },
      { slug: 'acme', name: 'Acme', plan: 'free', personal: false, role: 'owner', createdAt: undefined },
    );
    assert.deepEqual(
      (await ada.get('/api/me')).body.teams.map((t: { slug: string; role: string }) => [t.slug, t.role]),
      [
        ['acme', 'owner'],
        ['ada', 'owner'],
      ],
    );
    const taken = await ada.post('/api/teams', { slug: 'acme', name: 'Another' });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.error, 'slug_taken');

    const renamed = await ada.patch('/api/teams/acme', { name: '  Acme Inc  ' });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.name, 'Acme Inc');
    assert.equal((await ada.get('/api/teams/acme')).body.name, 'Acme Inc');

    assert.equal((await ada.post('/api/teams/acme/apps', { name: 'Web', slug: 'acme-web', source: gitSource })).status, 201);
    const refused = await ada.delete('/api/teams/acme');
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, 'team_has_apps');
    assert.match(refused.body.message, /1 app/);
    assert.equal((await ada.get('/api/teams/acme')).status, 200);

    assert.equal((await ada.delete('/api/apps/acme-web')).status, 204);
    assert.equal((await ada.delete('/api/teams/acme')).status, 204);
    assert.equal((await ada.get('/api/teams/acme')).status, 404);
    assert.deepEqual(
      (await ada.get('/api/me')).body.teams.map((t: { slug: string }) => t.slug),
      ['ada'],
    );
  });

  it('lets only an owner rename or delete a team', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    const bob = await signedIn(server.url, 'bob');
    await ada.post('/api/teams/acme/invitations', { login: 'bob', role: 'admin' });
    await bob.post(`/api/invitations/${(await bob.get('/api/invitations')).body.items[0].id}/accept`);
    assert.equal((await bob.patch('/api/teams/acme', { name: 'Bob Co' })).status, 403);
    assert.equal((await bob.delete('/api/teams/acme')).status, 403);
    assert.equal((await ada.get('/api/teams/acme')).body.name, 'Acme');
  });

  it('invites by login: the invitee sees the invitation and accepts or declines it', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    // bob has never signed in: invitations go to a GitHub login, not an account.
    const invited = await ada.post('/api/teams/acme/invitations', { login: 'bob', role: 'admin' });
    assert.equal(invited.status, 201, JSON.stringify(invited.body));
    assert.deepEqual(
      { login: invited.body.login, role: invited.body.role, team: invited.body.team, invitedBy: invited.body.invitedBy },
      { login: 'bob', role: 'admin', team: { slug: 'acme', name: 'Acme' }, invitedBy: 'ada' },
    );
    assert.ok(new Date(invited.body.expiresAt).getTime() > Date.now() + 6 * 86_400_000);
    await ada.post('/api/teams/acme/invitations', { login: 'carol' });

    const bob = await signedIn(server.url, 'bob');
    const mine = await bob.get('/api/invitations');
    assert.deepEqual(
      mine.body.items.map((i: { id: string; team: { slug: string }; role: string }) => [i.id, i.team.slug, i.role]),
      [[invited.body.id, 'acme', 'admin']],
    );
    assert.equal((await bob.get('/api/teams/acme')).status, 404, 'not a member before accepting');

    // Someone else cannot take bob's invitation.
    const dave = await signedIn(server.url, 'dave');
    assert.equal((await dave.post(`/api/invitations/${invited.body.id}/accept`)).status, 404);

    const accepted = await bob.post(`/api/invitations/${invited.body.id}/accept`);
    assert.equal(accepted.status, 200);
    assert.equal(accepted.body.slug, 'acme');
    assert.equal(accepted.body.role, 'admin');
    assert.deepEqual(
      (await bob.get('/api/me')).body.teams.map((t: { slug: string; role: string }) => [t.slug, t.role]),
      [
        ['acme', 'admin'],
        ['bob', 'owner'],
      ],
    );
    assert.deepEqual(await rolesOf(ada, 'acme'), { ada: 'owner', bob: 'admin' });
    assert.deepEqual((await bob.get('/api/invitations')).body.items, []);
    assert.equal((await bob.post(`/api/invitations/${invited.body.id}/accept`)).status, 404, 'an invitation is used once');

    const carol = await signedIn(server.url, 'carol');
    const [carolsInvitation] = (await carol.get('/api/invitations')).body.items;
    assert.equal(carolsInvitation.role, 'member', 'member is the default role');
    assert.equal((await carol.post(`/api/invitations/${carolsInvitation.id}/decline`)).status, 204);
    assert.deepEqual((await carol.get('/api/invitations')).body.items, []);
    assert.equal((await carol.get('/api/teams/acme')).status, 404);
    assert.deepEqual((await ada.get('/api/teams/acme/invitations')).body.items, []);
    assert.deepEqual(await rolesOf(ada, 'acme'), { ada: 'owner', bob: 'admin' });
  });

  it('refuses a duplicate invitation, an invitation to a member, and an admin inviting an owner', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    assert.equal((await ada.post('/api/teams/acme/invitations', { login: 'bob', role: 'admin' })).status, 201);

    const duplicate = await ada.post('/api/teams/acme/invitations', { login: 'BOB', role: 'member' });
    assert.equal(duplicate.status, 409);
    assert.equal(duplicate.body.error, 'already_invited');
    const selfInvite = await ada.post('/api/teams/acme/invitations', { login: 'Ada', role: 'member' });
    assert.equal(selfInvite.status, 409);
    assert.equal(selfInvite.body.error, 'already_member');

    const bob = await signedIn(server.url, 'bob');
    await bob.post(`/api/invitations/${(await bob.get('/api/invitations')).body.items[0].id}/accept`);
    const toOwner = await bob.post('/api/teams/acme/invitations', { login: 'eve', role: 'owner' });
    assert.equal(toOwner.status, 403);
    assert.match(toOwner.body.message, /owner/);
    assert.equal((await bob.post('/api/teams/acme/invitations', { login: 'eve', role: 'admin' })).status, 201, 'admins invite below owner');
    assert.deepEqual(
      (await Invitation.query(db()).orderBy('login')).map((i) => [i.login, i.role]),
      [['eve', 'admin']],
    );
  });

  it('keeps at least one owner: the last owner can be neither demoted nor removed', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    for (const res of [await ada.patch('/api/teams/acme/members/ada', { role: 'admin' }), await ada.delete('/api/teams/acme/members/ada')]) {
      assert.equal(res.status, 409);
      assert.equal(res.body.error, 'last_owner');
      assert.match(res.body.message, /last owner/);
    }
    assert.deepEqual(await rolesOf(ada, 'acme'), { ada: 'owner' });

    await ada.post('/api/teams/acme/invitations', { login: 'bob', role: 'member' });
    const bob = await signedIn(server.url, 'bob');
    await bob.post(`/api/invitations/${(await bob.get('/api/invitations')).body.items[0].id}/accept`);
    const promoted = await ada.patch('/api/teams/acme/members/bob', { role: 'owner' });
    assert.equal(promoted.status, 200);
    assert.equal(promoted.body.role, 'owner');

    // With a second owner, the first may step down, and then bob is the last one.
    assert.equal((await ada.patch('/api/teams/acme/members/ada', { role: 'admin' })).status, 200);
    assert.deepEqual(await rolesOf(bob, 'acme'), { ada: 'admin', bob: 'owner' });
    assert.equal((await bob.delete('/api/teams/acme/members/bob')).body.error, 'last_owner');
    // An admin cannot touch an owner.
    assert.equal((await ada.patch('/api/teams/acme/members/bob', { role: 'member' })).status, 403);
    assert.equal((await ada.delete('/api/teams/acme/members/bob')).status, 403);
    assert.equal((await bob.delete('/api/teams/acme/members/ada')).status, 204);
    assert.deepEqual(await rolesOf(bob, 'acme'), { bob: 'owner' });
  });

  it('lets a member leave, but not remove others', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    for (const login of ['bob', 'carol']) {
      await ada.post('/api/teams/acme/invitations', { login, role: 'member' });
      const c = await signedIn(server.url, login);
      await c.post(`/api/invitations/${(await c.get('/api/invitations')).body.items[0].id}/accept`);
    }
    const carol = await signedIn(server.url, 'carol');
    assert.equal((await carol.delete('/api/teams/acme/members/bob')).status, 403);
    assert.equal((await carol.patch('/api/teams/acme/members/bob', { role: 'admin' })).status, 403);
    assert.equal((await carol.delete('/api/teams/acme/members/carol')).status, 204);
    assert.equal((await carol.get('/api/teams/acme')).status, 404);
    assert.deepEqual(await rolesOf(ada, 'acme'), { ada: 'owner', bob: 'member' });
    const team = await Team.query(db()).findOne({ slug: 'acme' }).throwIfNotFound();
    assert.equal(await TeamMember.query(db()).where({ teamId: team.id }).resultSize(), 2);
  });

  it('lists member, app and env var changes in the audit log, newest first, page by page', async () => {
    const ada = await signedIn(server.url, 'ada');
    await ada.post('/api/teams', { slug: 'acme', name: 'Acme' });
    await onPro('acme');
    await ada.post('/api/teams/acme/invitations', { login: 'bob', role: 'member' });
    const bob = await signedIn(server.url, 'bob');
    await bob.post(`/api/invitations/${(await bob.get('/api/invitations')).body.items[0].id}/accept`);
    await ada.patch('/api/teams/acme/members/bob', { role: 'admin' });
    await bob.post('/api/teams/acme/apps', { name: 'Web', slug: 'acme-web', source: gitSource });
    await bob.put('/api/apps/acme-web/env', { vars: { API_KEY: 'audit-canary-secret' } });
    await ada.patch('/api/apps/acme-web', { instanceCount: 2 });
    await ada.delete('/api/apps/acme-web');
    // Another team's events stay in that team's log.
    await bob.post('/api/teams/bob/apps', { name: 'Other', slug: 'bob-web', source: gitSource });

    const all = await ada.get('/api/teams/acme/audit');
    assert.equal(all.status, 200);
    assert.equal(all.body.next, null);
    type Event = { id: string; actor: string; action: string; data: Record<string, unknown> };
    const events: Event[] = all.body.items;
    assert.deepEqual(
      events.map((e) => [e.actor, e.action]),
      [
        ['ada', 'app.deleted'],
        ['ada', 'app.updated'],
        ['bob', 'env.updated'],
        ['bob', 'app.created'],
        ['ada', 'member.role_changed'],
        ['bob', 'member.joined'],
        ['ada', 'member.invited'],
        ['ada', 'team.created'],
      ],
    );
    assert.deepEqual(events[2].data, { slug: 'acme-web', set: ['API_KEY'], unset: [] });
    assert.deepEqual(events[4].data, { login: 'bob', from: 'member', to: 'admin' });
    assert.ok(!JSON.stringify(all.body).includes('audit-canary-secret'));

    const paged: Event[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const res: Res = await ada.get(`/api/teams/acme/audit?limit=3${next ? `&cursor=${next}` : ''}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.items.length <= 3);
      paged.push(...res.body.items);
      next = res.body.next;
      pages++;
    } while (next);
    assert.equal(pages, 3);
    assert.deepEqual(paged, events);
  });
});
