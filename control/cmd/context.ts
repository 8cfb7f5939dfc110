// What a config CLI command needs from its surroundings: where to print, the environment, and how
// to reach the control plane. By default that is --server (or NODEMESH_SERVER) with a token file;
// a ControlPlaneDialer can offer another way — the netns lab registers one (lab/mesh/connect.ts,
// wired in by the dispatcher) that opens the socket inside the lab's control netns for --lab LAB.
import type { ClientRequestArgs } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, usageError } from '../../cli/command';
import { ApiClient } from '../api/client';
import { readToken, TOKEN_FILE } from '../api/token';
import { DEFAULT_DATA_DIR } from '../control-plane';
import { CONFIG_API_PORT } from '../../common/contracts/ports';

/** A control plane's config API as a dialer found it: its URL, the bearer token, how to connect. */
export interface ControlPlaneConnection {
  server: string;
  token: string;
  createConnection?: ClientRequestArgs['createConnection'];
  /** PEM roots an https:// server is verified with (the mesh trust bundle). */
  ca?: string;
}

/**
 * Another way to the control plane than --server: given the command's --lab/--server flags and
 * environment, the connection to use, or undefined for the ordinary one. Throws an Error a user
 * can act on when the choice cannot be honoured.
 */
export type ControlPlaneDialer = (choice: { lab?: string; server?: string; env: NodeJS.ProcessEnv }) => ControlPlaneConnection | undefined;

export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  createConnection?: ClientRequestArgs['createConnection'];
  dial?: ControlPlaneDialer;
}

let registeredDialer: ControlPlaneDialer | undefined;

/** Makes `dial` part of every processContext() (cli/main.ts registers the lab's before a config command runs). */
export function registerControlPlaneDialer(dial: ControlPlaneDialer): void {
  registeredDialer = dial;
}

export function processContext(): CliContext {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, dial: registeredDialer };
}

export const DEFAULT_SERVER = `http://127.0.0.1:${CONFIG_API_PORT}`;

/** Options every client command accepts. */
export const connectionOptions = {
  server: { type: 'string' },
  'token-file': { type: 'string' },
  'data-dir': { type: 'string' },
  'ca-file': { type: 'string' },
  lab: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const CONNECTION_HELP = `connection:
  --server URL        control plane config API (env NODEMESH_SERVER; default ${DEFAULT_SERVER})
  --token-file FILE   bearer token file (env NODEMESH_TOKEN holds the token itself;
                      default <data-dir>/${TOKEN_FILE})
  --data-dir DIR      the control plane's data dir, to find its token (env NODEMESH_DATA_DIR;
                      default ${DEFAULT_DATA_DIR})
  --ca-file FILE      roots an https:// server is verified with (env NODEMESH_CA_FILE; default
                      <data-dir>/ca/root-cert.pem, the mesh root, when it exists)
  --lab LAB           the control plane of a netns lab ('nodemesh lab up'); used by itself when
                      exactly one lab runs a mesh and neither --server nor NODEMESH_SERVER is set`;

export function clientFrom(
  values: { server?: string; 'token-file'?: string; 'data-dir'?: string; 'ca-file'?: string; lab?: string },
  ctx: CliContext,
): ApiClient {
  // A registered dialer first (the lab's: a control plane inside the lab's control netns).
  if (!ctx.createConnection && ctx.dial) {
    let c: ControlPlaneConnection | undefined;
    try {
      c = ctx.dial({ lab: values.lab, server: values.server, env: ctx.env });
    } catch (err) {
      throw new CliError((err as Error).message, 1);
    }
    if (c) return new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
  } else if (!ctx.createConnection && values.lab !== undefined) {
    throw new CliError('--lab needs the netns lab (lab/), which this installation does not have; use --server', 2);
  }
  const server = values.server ?? ctx.env.NODEMESH_SERVER ?? DEFAULT_SERVER;
  let token: string;
  try {
    if (values['token-file']) token = readToken(values['token-file']);
    else if (ctx.env.NODEMESH_TOKEN) token = ctx.env.NODEMESH_TOKEN.trim();
    else token = readToken(join(values['data-dir'] ?? ctx.env.NODEMESH_DATA_DIR ?? DEFAULT_DATA_DIR, TOKEN_FILE));
  } catch (err) {
    throw new CliError((err as Error).message, 1);
  }
  let ca: string | undefined;
  const caFile = values['ca-file'] ?? ctx.env.NODEMESH_CA_FILE;
  try {
    if (caFile) ca = readFileSync(caFile, 'utf8');
    else if (server.startsWith('https:')) {
      const root = join(values['data-dir'] ?? ctx.env.NODEMESH_DATA_DIR ?? DEFAULT_DATA_DIR, 'ca', 'root-cert.pem');
      if (existsSync(root)) ca = readFileSync(root, 'utf8');
    }
  } catch (err) {
    throw new CliError(`cannot read the CA file ${caFile}: ${(err as Error).message}; pass --ca-file with the mesh root ('nodemesh ca root')`, 1);
  }
  try {
    return new ApiClient({ server, token, createConnection: ctx.createConnection, ca });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/** util.parseArgs with usage errors turned into CliError (exit code 2) naming the command. */
export function parse<T extends ParseArgsConfig['options']>(command: string, argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw usageError(command, err) ?? new CliError(`${command}: ${(err as Error).message}; see 'nodemesh ${command} --help'`, 2);
  }
}
