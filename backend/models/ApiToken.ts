import { BaseModel } from './BaseModel.ts';

/** What a token may do, each including the ones before it (backend/policies/token-scopes.ts). */
export const TOKEN_SCOPES = ['read', 'deploy', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export class ApiToken extends BaseModel {
  static tableName = 'api_tokens';

  id!: string;
  userId!: string;
  name!: string;
  tokenHash!: string;
  prefix!: string;
  scope!: TokenScope;
  lastUsedAt!: Date | null;
  expiresAt!: Date | null;
  revokedAt!: Date | null;
  createdAt!: Date;
}
