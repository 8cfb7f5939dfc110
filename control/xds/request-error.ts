// The one error both ADS variants' stream states throw for a request they cannot act on.
import { status } from '@grpc/grpc-js';

/** A request the server cannot act on; the stream is ended with `code` (default INVALID_ARGUMENT). */
export class XdsRequestError extends Error {
  override readonly name = 'XdsRequestError';
  constructor(
    message: string,
    readonly code: status = status.INVALID_ARGUMENT,
  ) {
    super(message);
  }
}
