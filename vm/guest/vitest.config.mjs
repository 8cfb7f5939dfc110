// The vitest config a VM's tier runs with (vm/guest/run.sh) and the runner's host row: the
// project's own config, plus a reporter that writes each test file's result as the file ends into
// $NM_VM_REPORT_DIR/files (vm/file-report.ts: a run cut at its time limit keeps every finished
// file) and the files in the order of the filters in $NM_VM_ORDER (comma-separated; a cut part
// keeps the files its caller put first). Run with `--project <tier>` and the files as filters.
import { cpSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer } from 'vitest/node';
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../vitest.config.ts';
import { FileReporter, inGivenOrder } from '../file-report.ts';

const dir = process.env.NM_VM_REPORT_DIR;
if (!dir) throw new Error('vm/guest/vitest.config.mjs: NM_VM_REPORT_DIR (where each file\'s result goes) is not set');
const order = (process.env.NM_VM_ORDER ?? '').split(',').filter(Boolean);
// In a VM: the logs a failed lab test keeps in /tmp/nm-*-logs-* (the guest's /tmp goes with the VM)
// are copied to $NM_VM_KEPT_DIR after each file, so a run cut later still keeps them.
const keptDir = process.env.NM_VM_KEPT_DIR;
const keepLogs = {
  onTestModuleEnd() {
    if (!keptDir) return;
    try {
      for (const d of readdirSync('/tmp').filter((n) => /^nm-.*-logs-/.test(n))) cpSync(join('/tmp', d), join(keptDir, d), { recursive: true });
    } catch (err) {
      // keeping logs must never stop the run: say so and go on (run.sh copies them again at the end)
      process.stderr.write(`vm/guest/vitest.config.mjs: could not copy the kept logs to ${keptDir}: ${err}\n`);
    }
  },
};

class InGivenOrder extends BaseSequencer {
  async sort(files) {
    const root = this.ctx.config.root;
    return inGivenOrder(files, (f) => relative(root, f.moduleId), order);
  }
}

export default mergeConfig(
  base,
  defineConfig({
    test: {
      reporters: ['verbose', new FileReporter(dir), keepLogs],
      sequence: { sequencer: InGivenOrder },
    },
  }),
);
