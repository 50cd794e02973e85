import { TimestampedModel } from './BaseModel.ts';

export class Domain extends TimestampedModel {
  static tableName = 'domains';
  static jsonAttributes = ['certificate', 'dnsRequirements'];

  id!: string;
  appId!: string;
  hostname!: string;
  status!: string;
  certificate!: Record<string, unknown> | null;
  dnsRequirements!: Record<string, unknown> | null;
  lastError!: string | null;
  nextCheckAt!: Date | null;
  activeAt!: Date | null;
}
