import { BaseModel } from './BaseModel.ts';

export class AuditEvent extends BaseModel {
  static tableName = 'audit_events';
  static jsonAttributes = ['data'];

  id!: number;
  teamId!: string;
  actorId!: string | null;
  actorLogin!: string | null;
  action!: string;
  subjectType!: string;
  subjectId!: string | null;
  data!: Record<string, unknown>;
  createdAt!: Date;
}
