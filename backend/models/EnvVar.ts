import { BaseModel } from './BaseModel.ts';

export class EnvVar extends BaseModel {
  static tableName = 'env_vars';
  static idColumn = ['appId', 'name'];

  appId!: string;
  name!: string;
  keyId!: string;
  ciphertext!: Buffer;
  updatedBy!: string | null;
  createdAt!: Date;
  updatedAt!: Date;
}
