import type { RelationMappings } from 'objection';
import { BaseModel } from './BaseModel.ts';
import { Team } from './Team.ts';
import { User } from './User.ts';
import type { Role } from '../lib/api-types.ts';

// The roles are part of the API's words (backend/lib/api-types.ts, shared with the dashboard).
export { ROLES, type Role } from '../lib/api-types.ts';

export class TeamMember extends BaseModel {
  static tableName = 'team_members';
  static idColumn = ['teamId', 'userId'];

  teamId!: string;
  userId!: string;
  role!: Role;
  createdAt!: Date;

  user?: User;
  team?: Team;

  static get relationMappings(): RelationMappings {
    return {
      user: { relation: BaseModel.BelongsToOneRelation, modelClass: User, join: { from: 'team_members.userId', to: 'users.id' } },
      team: { relation: BaseModel.BelongsToOneRelation, modelClass: Team, join: { from: 'team_members.teamId', to: 'teams.id' } },
    };
  }
}
