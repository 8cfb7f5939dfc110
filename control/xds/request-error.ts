// The one error both ADS variants' stream states throw for a request they cannot act on.

/** A request the server cannot act on; the stream is ended with INVALID_ARGUMENT. */
export class XdsRequestError extends Error {
  override readonly name = 'XdsRequestError';
}
