// Errors the local Machines API answers with, shaped as Fly's ErrorResponse {error, status?}.

/** Values Fly's ErrorResponse.status may take (main.statusCode in the spec). */
export type FlyStatusCode = 'unknown' | 'insufficient_capacity' | 'volume_placement_capacity' | 'name_taken';

export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    readonly code?: FlyStatusCode,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string) => new ApiError(400, message);
export const notFound = (message: string) => new ApiError(404, message);
export const conflict = (message: string) => new ApiError(409, message);
export const preconditionFailed = (message: string) => new ApiError(412, message);
export const unprocessable = (message: string, code?: FlyStatusCode) => new ApiError(422, message, code);
