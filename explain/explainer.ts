// explain/ as the control plane's Explainer (control/api/explain.ts): the World of the latest
// snapshot is built once per store revision and reused until the store moves on.
import type { Explainer } from '../control/api/explain';
import type { Snapshot } from '../control/store/store';
import { explainConnection } from './evaluate';
import { World, worldOptionsFromEnv, type WorldOptions } from './world';

export function createExplainer(options: WorldOptions = worldOptionsFromEnv()): Explainer {
  let world: World | undefined;
  return (snapshot: Snapshot, request) => {
    if (!world || world.snapshot !== snapshot || world.revision !== snapshot.revision) world = new World(snapshot, options);
    return explainConnection(world, request);
  };
}
