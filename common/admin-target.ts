// A proxy's admin endpoint as the inspection commands (`nodemesh node-config`, `nodemesh
// proxy-config`) read it: a name and a GET. Directly over loopback TCP here; a netns lab lends
// targets inside its namespaces (lab/admin.ts).
import { request } from 'node:http';

export interface AdminTarget {
  /** The node's name, or the waypoint's namespace/name. */
  readonly name: string;
  get(path: string): Promise<{ status: number; body: string }>;
}

/** Where a lab's proxies' admin endpoints are (undefined: no such lab). */
export interface LabAdmins {
  labNodeAdmins(lab?: string): AdminTarget[] | undefined;
  labWaypointAdmins(lab?: string): AdminTarget[] | undefined;
}

/** An admin endpoint at host:port reached over TCP from here (limits: 5 s, 32 MiB). */
export function httpAdmin(name: string, hostPort: string, timeoutMs = 5000): AdminTarget {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`admin address '${hostPort}' is not HOST:PORT`);
  return {
    name,
    get: (path) =>
      new Promise((resolve, reject) => {
        const req = request({ host, port, path, method: 'GET', timeout: timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 32 << 20) req.destroy(new Error(`the admin response of ${hostPort}${path} is larger than 32 MiB`));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`no answer from ${hostPort} within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end();
      }),
  };
}
