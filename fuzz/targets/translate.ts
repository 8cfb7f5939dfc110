// The translations never throw on a valid store: documents are applied one by one to an in-memory
// store (validation and admission refuse what they refuse), and whatever store results is
// translated to the workload API and to every Envoy view.
import { translateEnvoy } from '../../control/envoy/translate';
import { MemoryStore } from '../../control/store';
import { translateWorkloadApi } from '../../control/workload/translate';
import { target } from '../target';
import { resourceBatch } from './resources';

export const translateTarget = target({
  name: 'translate',
  what: 'translateWorkloadApi and translateEnvoy on stores built from up to 12 generated resources (applied one by one)',
  arbitrary: resourceBatch,
  unitRuns: 150,
  async: true,
  check: async (docs: Array<Record<string, unknown>>) => {
    const store = new MemoryStore();
    for (const d of docs) {
      try {
        await store.apply(d);
      } catch {
        // refused by validation or admission: not part of the store
      }
    }
    const snap = store.snapshot();
    translateWorkloadApi(snap);
    translateEnvoy(snap);
  },
});
