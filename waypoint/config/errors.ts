// A resource the waypoint cannot apply. The message names the field and why, and becomes the NACK's
// error_detail, so an operator reading the control plane's log can fix the resource.
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Prefix a ConfigError's message with where it happened (field path). */
export function within<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${where}: ${err.message}`);
    throw err;
  }
}
