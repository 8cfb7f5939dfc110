// Headless Chromium for the page's tests: Debian's `chromium` (installed by scripts/setup.sh)
// driven by puppeteer-core over a pipe, launched as root with --no-sandbox, and killed by its pid
// when done (also when the test failed). Screenshots go to test-artifacts/ui/ (gitignored).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
// puppeteer-core is an ES module: its types come in through an import type with resolution-mode.
type Browser = import('puppeteer-core', { with: { 'resolution-mode': 'import' }}).Browser;
import { projectRoot } from '../../common/paths';
import { scaled } from './speed';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
export const ARTIFACTS = join(projectRoot, 'test-artifacts', 'ui');

/** Why the browser tests cannot run here, or undefined. */
export function browserMissing(): string | undefined {
  return CHROMIUM ? undefined : "no chromium (scripts/setup.sh installs Debian's chromium)";
}

export interface LaunchedBrowser {
  readonly browser: Browser;
  readonly pid: number | undefined;
  close(): Promise<void>;
}

export async function launchBrowser(extraArgs: string[] = []): Promise<LaunchedBrowser> {
  if (!CHROMIUM) throw new Error(browserMissing());
  const { launch } = await import('puppeteer-core');
  const browser = await launch({
    executablePath: CHROMIUM,
    headless: true,
    pipe: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--window-size=1400,900', ...extraArgs],
    defaultViewport: { width: 1400, height: 900 },
    // a CDP call's own limit (puppeteer's default 180 s, fixed): a waitForFunction is one call that
    // lasts as long as the wait, so on a slow machine (scaled waits past 180 s) it cut them short
    protocolTimeout: scaled(180_000),
  });
  const pid = browser.process()?.pid;
  return {
    browser,
    pid,
    close: async () => {
      await Promise.race([browser.close().catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
