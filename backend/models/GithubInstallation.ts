import type { RelationMappings } from 'objection';
import { BaseModel, TimestampedModel } from './BaseModel.ts';

export class GithubInstallationRepository extends BaseModel {
  static tableName = 'github_installation_repositories';
  static idColumn = ['installationId', 'repositoryId'];

  installationId!: number;
  repositoryId!: number;
  fullName!: string;
  private!: boolean;
  defaultBranch!: string | null;
  createdAt!: Date;
}

export class GithubInstallation extends TimestampedModel {
  static tableName = 'github_installations';

  id!: number;
  teamId!: string | null;
  accountLogin!: string;
  accountType!: string;
  repositorySelection!: string | null;
  suspendedAt!: Date | null;
  deletedAt!: Date | null;
  /** GitHub user id of whoever installed it (installation.created's sender); null when no such webhook came. */
  installerGithubId!: number | null;

  repositories?: GithubInstallationRepository[];

  static get relationMappings(): RelationMappings {
    return {
      repositories: {
        relation: BaseModel.HasManyRelation,
        modelClass: GithubInstallationRepository,
        join: { from: 'github_installations.id', to: 'github_installation_repositories.installationId' },
      },
    };
  }
}
