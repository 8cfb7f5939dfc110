// Every fuzz target, in the order the runners take them.
import type { FuzzTarget } from '../target';
import { configTarget } from './config';
import { derTarget } from './der';
import { hboneTarget } from './hbone';
import { http1Target } from './http1';
import { http2Target } from './http2';
import { policyTarget } from './policy';
import { translateTarget } from './translate';
import { xdsNodeProxyTarget, xdsWaypointTarget } from './xds';

export const TARGETS: readonly FuzzTarget[] = [
  configTarget,
  xdsNodeProxyTarget,
  xdsWaypointTarget,
  hboneTarget,
  derTarget,
  http1Target,
  http2Target,
  policyTarget,
  translateTarget,
];
