// The lab's waypoint controller (`nodemesh lab controller --lab L`, started by `lab up` with the
// mesh): it lists and then watches Gateways through the config API and makes the lab match them —
// for each waypoint Gateway a pod `wp-<name>` on the least-loaded node, its Workload, and a
// recorded `nodemesh waypoint run` process (restarted when it dies); for a Gateway that is gone,
// the process stops and the pod and Workload are removed. It does not own the processes: a
// controller restart adopts the running ones (recorded pid + start time).
import { cliEntry } from '../../common/paths';
import type { Logger } from '../../common/log';
import { ApiError, type ApiClient, type WatchLine, type WatchStream } from '../../control/api/client';
import { kindInfo, type KindInfo } from '../../control/resources/kinds';
import { isWaypointClass } from '../../control/resources/gateway';
import { readLabProcesses, readWaypointPods, type LabTopology, type LabWaypointPod } from '../state';
import { isSameProcess, sleep } from '../sys';
import { launch } from '../mesh/launch';
import { meshPaths } from '../mesh/paths';
import { gatewayKey, leastLoadedNode, nodeLoad, planWaypointPod, waypointArgv, waypointWorkload } from './plan';
import { createWaypointPod, removeWaypointPod } from './pods';
import { XDS_TLS_PORT } from '../../common/contracts/ports';
import { WAYPOINT_ENV } from '../../waypoint/process-flags';

export const WAYPOINT_PROCESS = 'waypoint';
const GATEWAY = kindInfo('Gateway') as KindInfo;
const WORKLOAD = kindInfo('Workload') as KindInfo;

interface GatewayRef {
  namespace: string;
  name: string;
}

interface GatewayDoc {
  metadata: { name: string; namespace?: string };
  spec?: { gatewayClassName?: string };
}

const isWaypoint = (g: GatewayDoc): boolean => isWaypointClass(g.spec?.gatewayClassName);
const refOf = (g: GatewayDoc): GatewayRef => ({ namespace: g.metadata.namespace ?? 'default', name: g.metadata.name });

/** The recorded, running waypoint process of a pod, if any. */
export function waypointProcess(lab: string, pod: string): { pid: number } | undefined {
  return readLabProcesses(lab).find((p) => p.name === WAYPOINT_PROCESS && p.place === pod && isSameProcess(p.pid, p.startTime));
}

export interface ControllerOptions {
  /** How often processes are checked (default 200 ms); a dead one is restarted on the next pass. */
  checkMs?: number;
  /** A waypoint that keeps dying is started at most this often (default 1 s). */
  minRestartMs?: number;
}

export class LabWaypointController {
  private readonly desired = new Map<string, GatewayRef>();
  private stopped = false;
  private running: Promise<void> = Promise.resolve();
  private pending = false;
  private watch: WatchStream | undefined;
  private readonly lastStart = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  readonly restarts = new Map<string, number>();

  constructor(
    private readonly t: LabTopology,
    private readonly api: ApiClient,
    private readonly log: Logger,
    private readonly opts: ControllerOptions = {},
  ) {}

  /** Runs until stop(): list, reconcile, watch; relists when the watch ends. */
  async run(): Promise<void> {
    this.timer = setInterval(() => this.checkProcesses(), this.opts.checkMs ?? 200);
    let backoff = 200;
    while (!this.stopped) {
      try {
        const list = await this.api.list<GatewayDoc>(GATEWAY);
        this.desired.clear();
        for (const g of list.items.filter(isWaypoint)) this.desired.set(gatewayKey(refOf(g)), refOf(g));
        this.schedule();
        this.watch = await this.api.watch({ revision: Number(list.metadata.resourceVersion), kind: 'Gateway' }, (l) => this.onLine(l));
        backoff = 200;
        await this.watch.done;
      } catch (err) {
        if (this.stopped) break;
        this.log.warn({ err: (err as Error).message, retryInMs: backoff }, 'cannot list or watch Gateways; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /** Stops watching; the waypoints keep running (lab down removes them). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watch?.close();
    await this.running;
  }

  /** Resolves when no reconcile is queued or running. */
  async idle(): Promise<void> {
    while (this.pending) await this.running;
    await this.running;
  }

  private onLine(l: WatchLine): void {
    if (l.type === 'BOOKMARK' || !l.object) return;
    const g = l.object as unknown as GatewayDoc;
    const ref = refOf(g);
    if (l.type === 'DELETED' || !isWaypoint(g)) this.desired.delete(gatewayKey(ref));
    else this.desired.set(gatewayKey(ref), ref);
    this.schedule();
  }

  private checkProcesses(): void {
    if (this.stopped || this.pending) return;
    const pods = readWaypointPods(this.t.lab);
    const dead = [...this.desired.keys()].some((k) => {
      const w = pods.find((p) => gatewayKey(p.gateway) === k);
      return !w || !waypointProcess(this.t.lab, w.pod.name);
    });
    if (dead || pods.some((p) => !this.desired.has(gatewayKey(p.gateway)))) this.schedule();
  }

  /** Queues one reconcile after the running one (several requests collapse into one). */
  private schedule(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    this.running = this.running.then(async () => {
      this.pending = false;
      if (this.stopped) return;
      try {
        await this.reconcile();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'waypoint reconcile failed; retrying on the next check');
      }
    });
  }

  private async reconcile(): Promise<void> {
    const pods = readWaypointPods(this.t.lab);
    for (const w of pods) {
      if (this.desired.has(gatewayKey(w.gateway))) continue;
      this.log.info({ gateway: gatewayKey(w.gateway), pod: w.pod.name }, 'Gateway gone: stopping its waypoint and removing its pod');
      await removeWaypointPod(this.t, w);
      await this.api.delete(WORKLOAD, w.pod.name, w.gateway.namespace).catch((err: unknown) => {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      });
    }
    for (const [key, ref] of this.desired) {
      let w = readWaypointPods(this.t.lab).find((p) => gatewayKey(p.gateway) === key);
      if (!w) w = await this.place(ref);
      if (waypointProcess(this.t.lab, w.pod.name)) continue;
      const since = Date.now() - (this.lastStart.get(key) ?? 0);
      const min = this.opts.minRestartMs ?? 1000;
      if (since < min) await sleep(min - since);
      if (this.stopped || !this.desired.has(key)) continue;
      this.start(w);
    }
  }

  private async place(ref: GatewayRef): Promise<LabWaypointPod> {
    const pods = readWaypointPods(this.t.lab);
    const places = readLabProcesses(this.t.lab)
      .filter((p) => isSameProcess(p.pid, p.startTime))
      .map((p) => p.place);
    const node = leastLoadedNode(this.t, nodeLoad(this.t, pods, places));
    const w = planWaypointPod(this.t, ref, node, pods);
    this.log.info({ gateway: gatewayKey(ref), pod: w.pod.name, node, ip: w.pod.ip }, 'new waypoint Gateway: creating its pod and Workload');
    await createWaypointPod(this.t, w);
    await this.api.apply([waypointWorkload(w)]);
    return w;
  }

  private start(w: LabWaypointPod): void {
    const key = gatewayKey(w.gateway);
    const paths = meshPaths(this.t.lab);
    const argv = waypointArgv(w, {
      cliEntry,
      nodeToken: paths.nodeToken(w.pod.node),
      trustBundle: paths.trustBundle,
      control: `${this.t.control.ip}:${XDS_TLS_PORT}`,
    });
    const first = !this.lastStart.has(key);
    this.lastStart.set(key, Date.now());
    const p = launch(this.t, w.pod.name, WAYPOINT_PROCESS, argv, paths.log(w.pod.name, WAYPOINT_PROCESS), {
      ...WAYPOINT_ENV,
      NODEMESH_LOG_LEVEL: process.env.NODEMESH_LOG_LEVEL ?? 'info',
    });
    if (!first) this.restarts.set(key, (this.restarts.get(key) ?? 0) + 1);
    this.log.info({ gateway: key, pod: w.pod.name, pid: p.pid, restart: !first }, first ? 'waypoint started' : 'waypoint restarted');
    void p.exited.then((how) => {
      if (this.stopped) return;
      this.log.warn({ gateway: key, pid: p.pid, how }, 'waypoint process exited');
      if (this.desired.has(key)) this.schedule();
    });
  }
}
