// The capture listeners' connection handlers over one ProxyContext: outbound (15001) and inbound
// plaintext (15006). In passthrough mode (no mesh services) both go direct.
import { RoundRobin, type EndpointPicker } from '../state/resolve';
import type { ProxyContext } from './context';
import type { CaptureHandlers } from './handlers';
import { handlePlaintextInbound } from './inbound';
import { handleOutbound } from './outbound';

export function captureHandlers(ctx: ProxyContext, pick: EndpointPicker = new RoundRobin().pick): CaptureHandlers {
  return {
    outbound: (wl, s) => handleOutbound(ctx, pick, wl, s),
    inbound: (wl, s) => handlePlaintextInbound(ctx, wl, s),
  };
}
