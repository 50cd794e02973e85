import { BaseModel } from './BaseModel.ts';

export class WebhookDelivery extends BaseModel {
  static tableName = 'webhook_deliveries';
  static jsonAttributes = ['payload'];

  id!: number;
  provider!: 'github' | 'stripe';
  deliveryId!: string;
  event!: string;
  action!: string | null;
  receivedAt!: Date;
  processedAt!: Date | null;
  error!: string | null;
  payload!: Record<string, unknown> | null;
}
