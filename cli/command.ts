// What every subcommand module exports: a name, a one-line summary and a run function that
// returns the process exit code. Errors a user can act on are thrown as CliError.
export interface Command {
  readonly name: string;
  readonly summary: string;
  run(argv: string[]): Promise<number>;
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * A util.parseArgs error (ERR_PARSE_ARGS_*) as a usage error (exit 2) that names the command, says
 * what was wrong in plain words and where the help is; undefined for any other error.
 */
export function usageError(command: string, err: unknown): CliError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const message = (err as Error).message;
  const quoted = /'([^']+)'/.exec(message)?.[1];
  let what: string;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') what = `unknown option ${quoted ?? ''}`.trim();
  else if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') what = `unexpected argument '${quoted ?? ''}'`;
  else if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = quoted?.split(' ')[0] ?? '';
    what = /argument missing/.test(message) ? `option ${option} needs a value` : `option ${option} takes no value`;
  } else what = message;
  return new CliError(`${command}: ${what}; see 'nodemesh ${command} --help'`, 2);
}
