import type { RelationMappings } from 'objection';
import { TimestampedModel } from './BaseModel.ts';
import { Team } from './Team.ts';

export type AppSource =
  | { type: 'github'; repo: string; branch: string; installationId: number }
  | { type: 'git'; url: string; branch: string };

export class App extends TimestampedModel {
  static tableName = 'apps';
  static jsonAttributes = ['source'];

  id!: string;
  teamId!: string;
  name!: string;
  slug!: string;
  source!: AppSource;
  rootDirectory!: string;
  buildCommand!: string | null;
  startCommand!: string | null;
  region!: string;
  machineSize!: string;
  internalPort!: number;
  healthCheckPath!: string;
  instanceCount!: number;
  autoDeploy!: boolean;
  createdBy!: string | null;

  team?: Team;

  static get relationMappings(): RelationMappings {
    return {
      team: { relation: TimestampedModel.BelongsToOneRelation, modelClass: Team, join: { from: 'apps.teamId', to: 'teams.id' } },
    };
  }
}
