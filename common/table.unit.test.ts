import { describe, expect, it } from 'vitest';
import { formatTable } from './table';

describe('formatTable', () => {
  it('aligns columns to the widest cell and trims trailing space', () => {
    expect(
      formatTable(
        ['A', 'BB', 'C'],
        [
          ['long', 'x', 'y'],
          ['s', '', ''],
        ],
      ),
    ).toBe('A     BB  C\nlong  x   y\ns\n');
  });
});
