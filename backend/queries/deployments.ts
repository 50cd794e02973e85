// Reading deployments: nothing here writes. The commands that change them are in
// backend/commands/deployments.ts.
import { App, Deployment, User } from '../models/index.ts';
import { NotFoundError } from '../lib/errors.ts';
import { decodeCursor, toPage } from '../lib/pagination.ts';

/** An app's deployments, newest first, a page at a time. */
export async function listDeployments(appId: string, limit: number, cursor?: string) {
  const before = decodeCursor(cursor, 1);
  const q = Deployment.query()
    .where({ appId })
    .orderBy('number', 'desc')
    .limit(limit + 1);
  if (before) q.where('number', '<', Number(before[0]));
  return toPage(await q, limit, (d) => [d.number]);
}

export async function findDeployment(id: string): Promise<Deployment> {
  const d = await Deployment.query().findById(id);
  if (!d) throw new NotFoundError('Deployment');
  return d;
}

/** The newest deployment of each of the team's apps, and the one each is serving (when not the same). */
export async function latestPerApp(teamId: string): Promise<{ latest: Deployment[]; live: Deployment[] }> {
  const apps = App.query().select('id').where({ teamId });
  const newest = async (liveOnly: boolean): Promise<Deployment[]> => {
    const q = Deployment.query()
      .distinctOn('appId')
      .whereIn('appId', apps)
      .orderBy([{ column: 'appId' }, { column: 'number', order: 'desc' }]);
    return liveOnly ? q.where({ status: 'live' }) : q;
  };
  const [latest, live] = await Promise.all([newest(false), newest(true)]);
  return { latest, live };
}

/** The logins of the users who triggered these deployments, by user id (one query for a list). */
export async function triggerLogins(deployments: readonly Pick<Deployment, 'triggeredBy'>[]): Promise<Map<string, string>> {
  const wanted = [...new Set(deployments.map((d) => d.triggeredBy).filter((i): i is string => Boolean(i)))];
  if (wanted.length === 0) return new Map();
  const users = await User.query().whereIn('id', wanted).select('id', 'login');
  return new Map(users.map((u) => [u.id, u.login]));
}
