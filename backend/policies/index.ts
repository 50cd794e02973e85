// Who may do what. A team's resources are invisible (404) to non-members; within a team, each
// action needs at least a role. Owner > admin > member.
import { ForbiddenError } from '../lib/errors.ts';
import type { Role } from '../models/index.ts';
import type { Action } from './actions.ts';

// API tokens are limited by a scope as well as their user's role: see token-scopes.ts.
export { authorizeToken, DEFAULT_TOKEN_SCOPE, scopeNeeded, TOKEN_SCOPES, type TokenScope } from './token-scopes.ts';

const RANK: Record<Role, number> = { member: 1, admin: 2, owner: 3 };

export const MIN_ROLE = {
  'team:read': 'member',
  'team:update': 'owner',
  'team:delete': 'owner',
  'billing:manage': 'owner',
  'usage:read': 'member',
  'notification:read': 'member',
  'member:list': 'member',
  'member:invite': 'admin',
  'member:update': 'admin',
  'member:remove': 'admin',
  'invitation:list': 'admin',
  'invitation:revoke': 'admin',
  'app:read': 'member',
  'app:create': 'admin',
  'app:update': 'admin',
  'app:delete': 'admin',
  'env:read': 'member',
  'env:reveal': 'admin',
  'env:write': 'admin',
  'domain:read': 'member',
  'domain:write': 'admin',
  'deployment:read': 'member',
  'deployment:create': 'member',
  'deployment:cancel': 'member',
  'deployment:rollback': 'member',
  'audit:read': 'admin',
  'github:read': 'member',
  'github:install': 'admin',
} as const satisfies Record<Action, Role>;

// The names alone live in actions.ts (dependency-free, for the dashboard); this table gives each its role.
export { ACTIONS, type Action } from './actions.ts';

const WORDS: Partial<Record<Action, string>> = {
  'team:update': 'change this team',
  'team:delete': 'delete this team',
  'billing:manage': 'manage billing',
  'member:invite': 'invite members',
  'member:update': 'change roles',
  'member:remove': 'remove members',
  'invitation:list': 'see invitations',
  'invitation:revoke': 'revoke invitations',
  'app:create': 'create apps',
  'app:update': 'change app settings',
  'app:delete': 'delete apps',
  'env:reveal': 'reveal env var values',
  'env:write': 'change env vars',
  'domain:write': 'change domains',
  'audit:read': 'read the audit log',
  'github:install': 'connect GitHub accounts',
};

export function atLeast(role: Role, min: Role): boolean {
  return RANK[role] >= RANK[min];
}

export function can(role: Role, action: Action): boolean {
  return atLeast(role, MIN_ROLE[action]);
}

/** Every action `role` may take: the dashboard offers only these (the API still checks each call). */
export function permissionsOf(role: Role): Action[] {
  return (Object.keys(MIN_ROLE) as Action[]).filter((action) => can(role, action));
}

export function authorize(role: Role, action: Action): void {
  if (can(role, action)) return;
  const needed = MIN_ROLE[action] === 'owner' ? 'an owner' : 'an admin or owner';
  throw new ForbiddenError(`Your role (${role}) may not ${WORDS[action] ?? action}; ask ${needed} of the team.`);
}

/** Whether someone with `actorRole` may give or take away `targetRole` (admins never touch owners). */
export function canManageRole(actorRole: Role, targetRole: Role): boolean {
  return actorRole === 'owner' || (actorRole === 'admin' && targetRole !== 'owner');
}
