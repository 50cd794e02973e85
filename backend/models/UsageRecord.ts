import { BaseModel } from './BaseModel.ts';

export class UsageRecord extends BaseModel {
  static tableName = 'usage_records';

  id!: number;
  teamId!: string;
  appId!: string | null;
  machineId!: string | null;
  meter!: string;
  guestSize!: string | null;
  region!: string | null;
  windowStart!: Date;
  windowEnd!: Date;
  quantity!: number;
  createdAt!: Date;
}
