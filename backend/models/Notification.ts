import { BaseModel } from './BaseModel.ts';
import type { Role } from './TeamMember.ts';

/** An in-app notification: for one user, or for every member of the team at or above min_role. */
export class Notification extends BaseModel {
  static tableName = 'notifications';
  static jsonAttributes = ['data'];

  id!: number;
  teamId!: string;
  userId!: string | null;
  minRole!: Role;
  kind!: string;
  title!: string;
  body!: string;
  data!: Record<string, unknown>;
  dedupeKey!: string | null;
  readAt!: Date | null;
  createdAt!: Date;
}
