import type { RelationMappings } from 'objection';
import { TimestampedModel } from './BaseModel.ts';
import { TeamMember } from './TeamMember.ts';

export class User extends TimestampedModel {
  static tableName = 'users';

  id!: string;
  login!: string;
  githubId!: number | null;
  name!: string | null;
  email!: string | null;
  avatarUrl!: string | null;

  memberships?: TeamMember[];

  static get relationMappings(): RelationMappings {
    return {
      memberships: { relation: TimestampedModel.HasManyRelation, modelClass: TeamMember, join: { from: 'users.id', to: 'team_members.userId' } },
    };
  }
}
