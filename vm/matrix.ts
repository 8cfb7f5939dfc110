// The kernel matrix file (vm/kernels.txt): which kernels `nodemesh vm test` boots. Pure parsing.

export type KernelSource = { kind: 'debian'; suite: string; pkg: string } | { kind: 'host' };

export interface MatrixKernel {
  /** the name used on the command line and in the table (5.10, 6.1, host, …) */
  name: string;
  source: KernelSource;
}

/** Parses the matrix file's text; throws with the line number on a malformed line. */
export function parseMatrix(text: string, file = 'kernels.txt'): MatrixKernel[] {
  const out: MatrixKernel[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [name, kind, ...rest] = line.split(/\s+/);
    const where = `${file}:${i + 1}`;
    if (!name || !kind) throw new Error(`${where}: expected "NAME debian SUITE PACKAGE" or "NAME host", got "${line}"`);
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`${where}: kernel name "${name}" may only hold letters, digits, ".", "_" and "-"`);
    if (out.some((k) => k.name === name)) throw new Error(`${where}: kernel "${name}" is listed twice`);
    if (kind === 'host') {
      if (rest.length) throw new Error(`${where}: "host" takes no further fields, got "${rest.join(' ')}"`);
      out.push({ name, source: { kind: 'host' } });
    } else if (kind === 'debian') {
      const [suite, pkg, extra] = rest;
      if (!suite || !pkg || extra) throw new Error(`${where}: expected "${name} debian SUITE PACKAGE", got "${line}"`);
      if (!/^[a-z0-9.+-]+$/.test(suite) || !/^[a-z0-9.+-]+$/.test(pkg))
        throw new Error(`${where}: suite and package must be Debian names, got "${suite}" "${pkg}"`);
      out.push({ name, source: { kind: 'debian', suite, pkg } });
    } else {
      throw new Error(`${where}: unknown source "${kind}" (known: debian, host)`);
    }
  });
  return out;
}

/** The kernels named in `--kernels a,b` (in that order), or all; unknown names are an error. */
export function selectKernels(all: MatrixKernel[], names: string[] | undefined): MatrixKernel[] {
  if (!names || names.length === 0) return all;
  return names.map((n) => {
    const k = all.find((x) => x.name === n);
    if (!k) throw new Error(`unknown kernel "${n}"; the matrix has: ${all.map((x) => x.name).join(', ')}`);
    return k;
  });
}
