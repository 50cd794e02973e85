// An app's machines as the dashboard's overview shows them: which release each runs, its state
// and its health checks. Read from the Machines API (Fly, or the local runtime) on each request:
// the Machines API, not our database, knows whether a machine is running right now.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../config.ts';
import { appAccess } from '../../queries/access.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { validate, inputOf } from '../../middleware/validate.ts';
import { authorize } from '../../policies/index.ts';
import { AppError } from '../../lib/errors.ts';
import { machinesApi } from '../../providers/fly/index.ts';
import { FlyApiError, FlyNetworkError } from '../../providers/fly/errors.ts';
import { META, type Machine } from '../../providers/fly/types.ts';
import { appParams } from './schema.ts';
import type { Instance } from '../../lib/api-types.ts';

const iso = (s?: string) => (s ? new Date(s).toISOString() : null);

export function presentInstance(m: Machine): Instance {
  return {
    id: m.id,
    name: m.name,
    state: m.state,
    region: m.region,
    deploymentId: m.config?.metadata?.[META.deployment] ?? null,
    image: m.config?.image ?? null,
    cordoned: Boolean(m.cordoned),
    checks: (m.checks ?? []).map((c) => ({ name: c.name, status: c.status, output: c.output ?? null, updatedAt: iso(c.updated_at) })),
    createdAt: iso(m.created_at),
    updatedAt: iso(m.updated_at),
  };
}

export function instanceRoutes(router: Router, config: Config): void {
  router.get('/apps/:app/instances', auth(), validate(appParams), async (ctx: Context) => {
    const { app, role } = await appAccess(requireActor(ctx), inputOf(ctx, appParams).params.app);
    authorize(role, 'app:read');
    const flyApp = app.flyAppName;
    let machines: Machine[];
    try {
      machines = await machinesApi(config).client.listMachines(flyApp);
    } catch (err) {
      // Never deployed: Fly has no such app yet, so it has no machines.
      if (err instanceof FlyApiError && err.status === 404) machines = [];
      else if (err instanceof FlyApiError || err instanceof FlyNetworkError) {
        ctx.state.log?.warn({ err: err.message }, 'could not list machines');
        throw new AppError(502, 'machines_unavailable', `The Machines API did not answer (${err.message}). The app itself is unaffected; reload in a moment.`);
      } else throw err;
    }
    const items = machines
      .filter((m) => m.state !== 'destroyed')
      .sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map(presentInstance);
    ctx.body = { items, next: null };
  });
}
