// control/observe: what the proxies saw, gathered by the control plane (docs/ui.md).
//   Observer.recentRecords(filter)  recent access records of every proxy (explain --observed reads these)
//   Observer.edges()                the mesh graph's edges: rates, errors, denials, mTLS, bytes
//   Observer.proxyObservations()    which proxies were read and how that went
// In a running control plane: cp.component<ObserverComponent>('observe')?.observer, or over the
// config API GET /debug/observe/{records,edges,proxies} (component.ts).
export { Observer, type ObservedRecord, type ObserverOptions, type ProxyObservation, type RecordFilter } from './observer';
export { ObserverComponent, OBSERVE_COMPONENT, recordFilter } from './component';
export { proxyTargets, peerHost, type ConnectedClient, type ProxyTarget } from './targets';
export type { EdgeView } from './traffic';
export { parsePrometheusText, type Sample } from './prometheus';
