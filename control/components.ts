// The parts of the control plane process besides the config store and HTTP API, started in order
// after them and stopped in reverse. Each component adds ONE line here (e.g. the xDS/CA gRPC
// server on 15012); `nodemesh control` runs what this returns.
import type { ControlPlaneComponent } from './control-plane';

export async function defaultComponents(): Promise<ControlPlaneComponent[]> {
  return [
    // Envoy xDS (control/envoy) then the xDS/CA gRPC side serving it next to the workload API.
    ...(await (await import('./envoy/component.js')).envoyAndXdsComponents()),
    // What the proxies saw (control/observe) and the /ui page on the config API (control/ui).
    ...(await (await import('./ui/component.js')).uiComponents()),
  ];
}
