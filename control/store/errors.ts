// Store errors, each with the HTTP status the API maps it to and a message that says what to do.
import { describeKey, type ResourceKey } from '../resources/meta';

export abstract class StoreError extends Error {
  abstract readonly status: number;
  abstract readonly reason: string;
}

export class NotFoundError extends StoreError {
  readonly status = 404;
  readonly reason = 'NotFound';
  constructor(readonly key: ResourceKey) {
    super(`${describeKey(key)} not found`);
    this.name = 'NotFoundError';
  }
}

/** A conditional write whose resourceVersion is no longer the stored one. */
export class ConflictError extends StoreError {
  readonly status = 409;
  readonly reason = 'Conflict';
  constructor(
    readonly key: ResourceKey,
    readonly expected: string,
    readonly actual: string | undefined,
  ) {
    super(
      actual === undefined
        ? `${describeKey(key)} was modified: you sent resourceVersion ${expected} but it no longer exists; get it again or drop metadata.resourceVersion to create it`
        : `${describeKey(key)} was modified: you sent resourceVersion ${expected}, the stored one is ${actual}; get it again and re-apply your change`,
    );
    this.name = 'ConflictError';
  }
}

/** A watch from a revision older than the retained history. */
export class RevisionCompactedError extends StoreError {
  readonly status = 410;
  readonly reason = 'Expired';
  constructor(
    readonly requested: number,
    readonly oldest: number,
  ) {
    super(`revision ${requested} was compacted (history starts after ${oldest}): list again and watch from the list's revision`);
    this.name = 'RevisionCompactedError';
  }
}

/** The store cannot serve (closed, data dir locked by another process, unreadable state). */
export class StoreUnavailableError extends StoreError {
  readonly status = 503;
  readonly reason = 'Unavailable';
  constructor(message: string) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}

/** One or more resources of a write were refused; nothing was written. */
export class InvalidBatchError extends StoreError {
  readonly status = 400;
  readonly reason = 'Invalid';
  constructor(readonly errors: readonly import('../resources/validation').ValidationError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'InvalidBatchError';
  }
}

/** A write to a store whose resources belong to another system (Kubernetes: the API server). */
export class ReadOnlyStoreError extends StoreError {
  readonly status = 405;
  readonly reason = 'MethodNotAllowed';
  constructor(message: string) {
    super(message);
    this.name = 'ReadOnlyStoreError';
  }
}
