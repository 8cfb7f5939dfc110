// A cheap, linear pre-scan of YAML/JSON text for how deeply it nests, run before the YAML parser
// sees it: the parser and toJS recurse per level, so `[`×1,000 overflows the stack and a later
// parse can abort the whole process inside V8's regexp compiler. The scan over-estimates rather
// than under-estimates (an unbalanced `[` inside a plain scalar counts), which only matters near
// the limit, far above what any mesh resource needs (they nest about ten levels).

/** Deepest nesting accepted in a configuration document (flow and block levels together). */
export const MAX_NESTING_DEPTH = 64;

export interface TooDeep {
  readonly depth: number;
  /** 1-based line where the limit was passed. */
  readonly line: number;
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const NL = 0x0a;

/**
 * Returns where `text` first nests deeper than `limit` (flow `[`/`{` levels plus block
 * indentation levels and compact `- `/`? `/`: ` indicators), or undefined if it never does.
 * Quoted scalars and comments are skipped.
 */
export function findExcessiveNesting(text: string, limit = MAX_NESTING_DEPTH): TooDeep | undefined {
  let flow = 0;
  const block: number[] = []; // indentation columns of the open block levels
  let line = 1;
  let i = 0;
  const n = text.length;
  let atLineStart = true;
  let prev = NL; // the previous significant character (for "does a quote start a scalar here")
  while (i < n) {
    if (atLineStart) {
      atLineStart = false;
      let col = 0;
      while (i + col < n && text.charCodeAt(i + col) === 0x20) col++;
      const c = text.charCodeAt(i + col);
      const blank = i + col >= n || c === NL || c === 0x0d || c === 0x23; /* # */
      if (flow === 0 && !blank) {
        while (block.length > 0 && (block[block.length - 1] as number) > col) block.pop();
        if (block.length === 0 || (block[block.length - 1] as number) < col) block.push(col);
        // compact nested collections on one line: "- - - x", "? - x", "- key: - x"
        let j = i + col;
        while (j + 1 < n && (text[j] === '-' || text[j] === '?' || text[j] === ':') && (text.charCodeAt(j + 1) === 0x20 || text.charCodeAt(j + 1) === NL)) {
          j += 2;
          while (j < n && text.charCodeAt(j) === 0x20) j++;
          const c2 = j - i;
          if ((block[block.length - 1] as number) < c2) block.push(c2);
        }
        if (block.length + flow > limit) return { depth: block.length + flow, line };
      }
      i += col;
      prev = 0x20;
      continue;
    }
    const c = text.charCodeAt(i);
    if (c === NL) {
      line++;
      i++;
      atLineStart = true;
      prev = NL;
      continue;
    }
    if (c === 0x23 /* # */ && isSpace(prev)) {
      while (i < n && text.charCodeAt(i) !== NL) i++;
      continue;
    }
    const startsScalar = isSpace(prev) || prev === 0x5b || prev === 0x7b || prev === 0x2c || prev === 0x3a; // space [ { , :
    if ((c === 0x22 || c === 0x27) && startsScalar) {
      // a quoted scalar: "…" with backslash escapes, '…' with '' for a quote; may span lines
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === NL) line++;
        if (c === 0x22 && d === 0x5c /* \ */) {
          if (text.charCodeAt(i + 1) === NL) line++;
          i += 2;
          continue;
        }
        if (d === c) {
          if (c === 0x27 && text.charCodeAt(i + 1) === 0x27) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
      prev = c;
      continue;
    }
    if (c === 0x5b || c === 0x7b) {
      flow++;
      if (block.length + flow > limit) return { depth: block.length + flow, line };
    } else if ((c === 0x5d || c === 0x7d) && flow > 0) {
      flow--;
    }
    prev = c;
    i++;
  }
  return undefined;
}
