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
