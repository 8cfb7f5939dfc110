// `nodemesh doctor`: can this kernel run capture? Prints every check, present or missing, with the
// Linux release that brings what is missing. Exit code 0 when everything is present, 1 otherwise.
import { CliError, type Command } from '../../cli/command';
import { ensureBpffs } from './mounts';
import { probeKernel } from './probe';
import { formatReport } from './report';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check that the kernel has everything capture needs (program types, attach types, helpers, cgroup v2, bpffs, BTF)',
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write('usage: nodemesh doctor [--json]\n  probes the kernel (as root) and lists what capture needs, present or missing\n');
      return 0;
    }
    const json = argv.includes('--json');
    const unknown = argv.filter((a) => a !== '--json');
    if (unknown.length) throw new CliError(`unknown option ${unknown[0]}; usage: nodemesh doctor [--json]`, 2);
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new CliError('probing BPF features needs root: run `sudo nodemesh doctor`');
    }
    let mounted = false;
    try {
      mounted = ensureBpffs() === 'mounted';
    } catch {
      // reported as missing below
    }
    const report = probeKernel();
    if (json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else process.stdout.write((mounted ? 'mounted the bpffs at /sys/fs/bpf\n' : '') + formatReport(report) + '\n');
    return report.ok ? 0 : 1;
  },
};
