// Plain-text aligned tables for CLI output (pure): `lab up`, `lab status`, `get`, `waypoint list`.
/** Columns padded to their widest cell, separated by `gap` spaces; trailing space trimmed. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], gap = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const sep = ' '.repeat(gap);
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join(sep)
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
