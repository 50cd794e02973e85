import { Model } from 'objection';

// Column names are mapped between camelCase and snake_case by the knex instance (db.ts).
export class BaseModel extends Model {}

/** Models with an updated_at column keep it current on every update. */
export class TimestampedModel extends BaseModel {
  createdAt!: Date;
  updatedAt!: Date;

  $beforeUpdate(): void {
    this.updatedAt = new Date();
  }
}
