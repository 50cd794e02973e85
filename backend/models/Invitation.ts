import type { RelationMappings } from 'objection';
import { BaseModel } from './BaseModel.ts';
import { Team } from './Team.ts';
import { User } from './User.ts';
import type { Role } from './TeamMember.ts';

export class Invitation extends BaseModel {
  static tableName = 'invitations';

  id!: string;
  teamId!: string;
  login!: string;
  role!: Role;
  invitedBy!: string | null;
  createdAt!: Date;
  expiresAt!: Date;

  team?: Team;
  inviter?: User | null;

  static get relationMappings(): RelationMappings {
    return {
      team: { relation: BaseModel.BelongsToOneRelation, modelClass: Team, join: { from: 'invitations.teamId', to: 'teams.id' } },
      inviter: { relation: BaseModel.BelongsToOneRelation, modelClass: User, join: { from: 'invitations.invitedBy', to: 'users.id' } },
    };
  }
}
