// Every action the policy knows, with no dependencies: backend/policies/index.ts gives each its
// least role, and the dashboard (through backend/lib/api-types.ts) types `session.can(action)` with
// the same list, so it cannot ask about an action the API does not have.
export const ACTIONS = [
  'team:read',
  'team:update',
  'team:delete',
  'billing:manage',
  'usage:read',
  'notification:read',
  'member:list',
  'member:invite',
  'member:update',
  'member:remove',
  'invitation:list',
  'invitation:revoke',
  'app:read',
  'app:create',
  'app:update',
  'app:delete',
  'env:read',
  'env:reveal',
  'env:write',
  'domain:read',
  'domain:write',
  'deployment:read',
  'deployment:create',
  'deployment:cancel',
  'deployment:rollback',
  'audit:read',
  'github:read',
  'github:install',
] as const;

export type Action = (typeof ACTIONS)[number];
