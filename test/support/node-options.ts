// What node makes of a NODE_OPTIONS value: whether it starts with it (node refuses a flag it does
// not allow there, exit 9) and the young generation's size it then has. The proxies' process-flag
// tests (node proxy DaemonSet, waypoint Deployment) check their NODE_OPTIONS with it.
import { spawnSync } from 'node:child_process';

export function underNodeOptions(nodeOptions: string): { status: number | null; stderr: string; newSpaceBytes: number } {
  const r = spawnSync(process.execPath, ['-p', "require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size"], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
  });
  return { status: r.status, stderr: r.stderr, newSpaceBytes: Number(r.stdout) };
}
