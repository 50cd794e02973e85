import { BaseModel } from './BaseModel.ts';

export class ApiToken extends BaseModel {
  static tableName = 'api_tokens';

  id!: string;
  userId!: string;
  name!: string;
  tokenHash!: string;
  prefix!: string;
  lastUsedAt!: Date | null;
  expiresAt!: Date | null;
  revokedAt!: Date | null;
  createdAt!: Date;
}
