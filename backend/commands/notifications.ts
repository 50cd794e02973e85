// A caller's notifications in a team: those addressed to them, and those for every member whose
// role is at least the notification's min_role. Reading one marks it read for everyone it is for.
import type { Knex } from 'knex';
import { Notification, type Role, type Team } from '../models/index.ts';
import { NotFoundError } from '../lib/errors.ts';
import { atLeast } from '../policies/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { decodeCursor, toPage } from '../lib/pagination.ts';

const ROLES_AT_OR_BELOW = (role: Role): Role[] => (['member', 'admin', 'owner'] as Role[]).filter((r) => atLeast(role, r));

function visibleTo(knex: Knex, team: Team, actor: Actor, role: Role) {
  return Notification.query(knex)
    .where('teamId', team.id)
    .where((w) => w.where('userId', actor.user.id).orWhere((o) => o.whereNull('userId').whereIn('minRole', ROLES_AT_OR_BELOW(role))));
}

export async function listNotifications(knex: Knex, team: Team, actor: Actor, role: Role, options: { limit: number; cursor?: string; unread?: boolean }) {
  const before = decodeCursor(options.cursor, 1);
  const q = visibleTo(knex, team, actor, role)
    .orderBy('id', 'desc')
    .limit(options.limit + 1);
  if (before) q.where('id', '<', Number(before[0]));
  if (options.unread) q.whereNull('readAt');
  const [page, unread] = await Promise.all([
    q.then((rows) => toPage(rows, options.limit, (n) => [n.id])),
    visibleTo(knex, team, actor, role).whereNull('readAt').resultSize(),
  ]);
  return { ...page, unread };
}

/** Marks one notification read (idempotent); another team's, or one not for the caller, is a 404. */
export async function markRead(knex: Knex, team: Team, actor: Actor, role: Role, id: number): Promise<Notification> {
  const found = await visibleTo(knex, team, actor, role).findById(id);
  if (!found) throw new NotFoundError(`Notification ${id}`);
  if (found.readAt) return found;
  return Notification.query(knex).patchAndFetchById(id, { readAt: new Date() });
}

/** Marks every unread notification the caller can see as read; returns how many. */
export async function markAllRead(knex: Knex, team: Team, actor: Actor, role: Role): Promise<number> {
  return visibleTo(knex, team, actor, role).whereNull('readAt').patch({ readAt: new Date() });
}
