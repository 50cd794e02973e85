import type { RelationMappings } from 'objection';
import { TimestampedModel } from './BaseModel.ts';
import { Team } from './Team.ts';
import type { AppSource } from '../lib/api-types.ts';

// A github source's repositoryId is filled in by Rhone from the installation's repositories (a
// repository keeps its id when renamed); clients send repo, branch and installationId.
export type { AppSource } from '../lib/api-types.ts';

export const SOURCE_PROBLEMS = ['installation_deleted', 'installation_suspended', 'repository_removed'] as const;
export type SourceProblem = (typeof SOURCE_PROBLEMS)[number];

export class App extends TimestampedModel {
  static tableName = 'apps';
  static jsonAttributes = ['source'];

  id!: string;
  teamId!: string;
  name!: string;
  slug!: string;
  /** The Fly app's name, given once at creation and never recomputed (providers/fly/names.ts). */
  flyAppName!: string;
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
  /** Why the GitHub source cannot be reached right now; null when it can. */
  sourceProblem!: SourceProblem | null;
  createdBy!: string | null;

  team?: Team;

  static get relationMappings(): RelationMappings {
    return {
      team: { relation: TimestampedModel.BelongsToOneRelation, modelClass: Team, join: { from: 'apps.teamId', to: 'teams.id' } },
    };
  }
}
