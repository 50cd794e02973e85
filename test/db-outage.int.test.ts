// While Postgres is unreachable the api says so: 503 with Retry-After and a message naming the
// database, not a 500 "something went wrong". Once it is back, requests work again.
import assert from 'node:assert/strict';
import { getConfig } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { createToken } from '../backend/commands/tokens.ts';
import { makeUser } from './factories.ts';
import { apiProcess, type ApiProcess } from './support/api-process.ts';
import { startDatabaseProxy, type TcpProxy } from './support/tcp-proxy.ts';

describe('api during a database outage', function () {
  this.timeout(30_000);
  let proxy: TcpProxy;
  let api: ApiProcess;

  beforeEach(async () => {
    let url: string;
    ({ proxy, url } = await startDatabaseProxy(getConfig().databaseUrl));
    api = await apiProcess({ DATABASE_URL: url });
  });
  afterEach(async () => {
    await api.stop();
    await proxy.close();
  });

  it('answers 503 with Retry-After while Postgres refuses connections, and works again after', async () => {
    const user = await makeUser('ada');
    const { token } = await createToken(db(), { user } as never, { name: 'ci' });
    const me = () => fetch(`${api.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    await proxy.setMode('refuse');
    const down = await me();
    assert.equal(down.status, 503);
    assert.equal(down.headers.get('retry-after'), '5');
    const body = (await down.json()) as { error: string; message: string };
    assert.equal(body.error, 'database_unavailable');
    assert.match(body.message, /^Rhone cannot reach its database right now/);

    await proxy.setMode('pass');
    assert.equal((await me()).status, 200);
  });
});
