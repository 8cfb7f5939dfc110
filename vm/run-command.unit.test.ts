import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../common/paths';
import { commandInit, commandScript } from './run-command';

describe('vm/run-command', () => {
  it("points the test VM's stage 1 at command.sh and changes nothing else", () => {
    const init = readFileSync(join(projectRoot, 'vm/guest/init'), 'utf8');
    const mine = commandInit(init);
    expect(mine).toContain('exec switch_root /newroot /bin/bash "$DIR/vm/guest/command.sh"');
    expect(mine.replace('vm/guest/command.sh"', 'vm/guest/run.sh"')).toBe(init);
    expect(() => commandInit('#!/bin/sh\necho no hand-over\n')).toThrow(/no longer hands over/);
  });

  it('quotes every argument for bash, quotes included', () => {
    expect(commandScript(['node', 'dist/bench/chaos.js', '--netem', 'delay 10ms 5ms loss 0.5%'], { A: "it's" })).toBe(
      `export A='it'\\''s'\nexec 'node' 'dist/bench/chaos.js' '--netem' 'delay 10ms 5ms loss 0.5%'\n`,
    );
  });
});
