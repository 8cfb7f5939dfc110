// NODEMESH_SAME_NODE_SPLICE: the splice is the default, sockmap is opt-in, anything else is refused by name.
import { describe, expect, it } from 'vitest';
import { sameNodeModeFromEnv } from './sockmap';

describe('NODEMESH_SAME_NODE_SPLICE', () => {
  it('defaults to the kernel splice; sockmap and userspace are chosen by name', () => {
    expect(sameNodeModeFromEnv(undefined)).toBe('kernel');
    expect(sameNodeModeFromEnv('')).toBe('kernel');
    expect(sameNodeModeFromEnv('kernel')).toBe('kernel');
    expect(sameNodeModeFromEnv('sockmap')).toBe('sockmap');
    expect(sameNodeModeFromEnv('userspace')).toBe('userspace');
  });

  it('refuses anything else, naming the variable and the choices', () => {
    expect(() => sameNodeModeFromEnv('fast')).toThrow('NODEMESH_SAME_NODE_SPLICE=fast: must be kernel (the default), sockmap or userspace');
  });
});
