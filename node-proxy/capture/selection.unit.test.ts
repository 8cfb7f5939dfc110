import { describe, expect, it } from 'vitest';
import { parseSelection, settingsFor } from './selection';

describe('capture selection', () => {
  it('captures every pod by default and none when the default is none', () => {
    expect(settingsFor(parseSelection('', 'f'), 'pod1-1')).toEqual({});
    const none = parseSelection('mode: none\nworkloads:\n  pod1-2: { mode: ambient, excludedOutboundPorts: [5432] }\n', 'f');
    expect(settingsFor(none, 'pod1-1')).toBeUndefined();
    expect(settingsFor(none, 'pod1-2')).toEqual({ mode: 'ambient', excludedOutboundPorts: [5432] });
  });

  it('lets one workload opt out and another carry exclusions (JSON works too)', () => {
    const sel = parseSelection(JSON.stringify({ workloads: { 'pod1-2': { mode: 'none' }, 'pod1-1': { excludedCidrs: ['10.1.0.0/16'] } } }), 'f');
    expect(settingsFor(sel, 'pod1-2')).toBeUndefined();
    expect(settingsFor(sel, 'pod1-1')).toEqual({ excludedCidrs: ['10.1.0.0/16'] });
  });

  it('names the bad field', () => {
    expect(() => parseSelection('workloads:\n  pod1-1: { excludedOutboundPorts: [0] }\n', '/x.yaml')).toThrow(
      /capture selection \/x.yaml: workloads.pod1-1.excludedOutboundPorts.0:/,
    );
    expect(() => parseSelection('mode: sidecar\n', '/x.yaml')).toThrow(/mode/);
    expect(() => parseSelection('workloads:\n  pod1-1: { excludePorts: [1] }\n', '/x.yaml')).toThrow(/workloads.pod1-1/);
  });
});
