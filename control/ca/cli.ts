// `nodemesh ca …`: node credentials and the mesh root, for the lab and other non-Kubernetes runs.
// The data dir must be the control plane's (--data-dir), where the CA keeps its root and the
// hashed node tokens.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CliError, usageError, type Command } from '../../cli/command';
import { DEFAULT_TRUST_DOMAIN, assertTrustDomain } from '../../common/identity/spiffe';
import { CertificateAuthority } from './authority';
import { NodeTokens } from './tokens';

const DEFAULT_DATA_DIR = process.env.NODEMESH_DATA_DIR ?? '/var/lib/nodemesh';

const USAGE = `usage: nodemesh ca <subcommand> [options]
  issue-node-token --node NAME [--out FILE]   make a bearer token for a node proxy (replaces its old one);
                                              prints it, or writes it to FILE (mode 0600)
  revoke-node-token --node NAME               the node's token stops working at once
  list-node-tokens                            the nodes that have a token
  root [--trust-domain TD]                    print the mesh root certificate (PEM), making the root if
                                              the data dir has none yet
common options:
  --data-dir DIR   the control plane's data dir (default $NODEMESH_DATA_DIR or ${DEFAULT_DATA_DIR})`;

export const caCommand: Command = {
  name: 'ca',
  summary: 'node tokens for the certificate service, and the mesh root certificate',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    let values: { node?: string; out?: string; 'data-dir'?: string; 'trust-domain'?: string; help?: boolean };
    try {
      ({ values } = parseArgs({
        args: rest,
        options: {
          node: { type: 'string' },
          out: { type: 'string' },
          'data-dir': { type: 'string' },
          'trust-domain': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
      }));
    } catch (err) {
      throw usageError(`ca ${sub ?? ''}`.trim(), err) ?? new CliError(`${(err as Error).message}\n${USAGE}`, 2);
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR;
    const needNode = (): string => {
      if (!values.node) throw new CliError(`nodemesh ca ${sub} needs --node NAME`, 2);
      return values.node;
    };
    const tokens = NodeTokens.forDataDir(dataDir);
    switch (sub) {
      case 'issue-node-token': {
        const node = needNode();
        let token: string;
        try {
          token = tokens.issue(node);
        } catch (err) {
          throw new CliError(`cannot issue a token for node '${node}': ${(err as Error).message}`);
        }
        if (values.out) {
          writeFileSync(values.out, token + '\n', { mode: 0o600 });
          process.stderr.write(`wrote the token for node '${node}' to ${values.out}\n`);
        } else {
          process.stdout.write(token + '\n');
        }
        return 0;
      }
      case 'revoke-node-token': {
        const node = needNode();
        if (!tokens.revoke(node)) throw new CliError(`node '${node}' has no token in ${tokens.file}`);
        process.stderr.write(`revoked the token of node '${node}'\n`);
        return 0;
      }
      case 'list-node-tokens':
        for (const n of tokens.nodes()) process.stdout.write(n + '\n');
        return 0;
      case 'root': {
        let trustDomain: string;
        try {
          trustDomain = assertTrustDomain(values['trust-domain'] ?? DEFAULT_TRUST_DOMAIN);
        } catch (err) {
          throw new CliError((err as Error).message, 2);
        }
        const ca = await CertificateAuthority.open({ trustDomain, dataDir });
        process.stdout.write(ca.trustBundlePem.join(''));
        return 0;
      }
      default:
        throw new CliError(`unknown subcommand '${sub}'\n${USAGE}`, 2);
    }
  },
};
