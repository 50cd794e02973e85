import { BaseModel } from './BaseModel.ts';
import type { TokenScope } from '../lib/api-types.ts';

/** What a token may do, each including the ones before it (backend/policies/token-scopes.ts); part of the API's words. */
export { TOKEN_SCOPES, type TokenScope } from '../lib/api-types.ts';

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
