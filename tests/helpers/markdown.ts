/**
 * Reading the project's Markdown as the README test needs it: fenced code blocks (with their info
 * strings and line numbers), headings as GitHub anchors them, relative links, and the simple
 * commands of a shell block (words, quotes, comments, pipes and `&&`; no substitutions run).
 */

export interface FencedBlock {
  /** The info string after the fence, e.g. `sh runnable background ready=dashboard`. */
  info: string;
  /** The first word of the info string (`sh`, `yaml`, ...). */
  lang: string;
  /** Line number (1-based) of the opening fence. */
  line: number;
  /** The block's text, without the fences; ends with a newline. */
  text: string;
}

export interface MarkdownLink { target: string; line: number }

interface Scanned { blocks: FencedBlock[]; headings: string[]; links: MarkdownLink[] }

/** One pass over a Markdown text: its fenced blocks, its headings (text) and its links, outside code. */
export function scanMarkdown(md: string): Scanned {
  const lines = md.split('\n');
  const blocks: FencedBlock[] = [];
  const headings: string[] = [];
  const links: MarkdownLink[] = [];
  let open: { info: string; line: number; body: string[] } | null = null;
  lines.forEach((l, i) => {
    const fence = /^```(.*)$/.exec(l);
    if (open) {
      if (fence && fence[1]!.trim() === '') {
        const info = open.info.trim();
        blocks.push({ info, lang: info.split(/\s+/)[0] ?? '', line: open.line, text: open.body.map((b) => `${b}\n`).join('') });
        open = null;
      } else open.body.push(l);
      return;
    }
    if (fence) { open = { info: fence[1]!, line: i + 1, body: [] }; return; }
    const h = /^#{1,6}\s+(.*)$/.exec(l);
    if (h) headings.push(h[1]!.trim());
    // Links outside inline code: drop `...` spans first.
    for (const m of l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) links.push({ target: m[1]!, line: i + 1 });
  });
  if (open) throw new Error(`a code fence opened at line ${(open as { line: number }).line} is never closed`);
  return { blocks, headings, links };
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens (duplicates get -1, -2...). */
export function anchorsOf(headings: readonly string[]): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const h of headings) {
    const base = h.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/**
 * The simple commands of a shell text, each as its words (quotes removed, `\`-continued lines
 * joined, comments dropped). Commands are split at `|`, `||`, `&&`, `;`, `&` and new lines;
 * redirections (`> f`, `2>&1`) are dropped; a `$(...)` is kept inside its word, unexpanded.
 */
export function shellCommands(text: string): string[][] {
  const src = text.replace(/\\\n/g, ' ');
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  const endWord = (): void => { if (word !== null) words.push(word); word = null; };
  const endCommand = (): void => { endWord(); if (words.length) commands.push(words); words = []; };
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "'") {
      const j = src.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unclosed ' in: ${src.slice(i, i + 60)}`);
      word = (word ?? '') + src.slice(i + 1, j);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; j < src.length && src[j] !== '"'; j++) {
        if (src[j] === '\\' && j + 1 < src.length) { s += src[j + 1]; j++; } else s += src[j];
      }
      if (j >= src.length) throw new Error(`unclosed " in: ${src.slice(i, i + 60)}`);
      word = (word ?? '') + s;
      i = j;
    } else if (c === '$' && src[i + 1] === '(') {
      let depth = 0;
      let j = i + 1;
      for (; j < src.length; j++) {
        if (src[j] === '(') depth++;
        else if (src[j] === ')' && --depth === 0) break;
      }
      word = (word ?? '') + src.slice(i, j + 1);
      i = j;
    } else if (c === '#' && word === null) {
      const j = src.indexOf('\n', i);
      i = j < 0 ? src.length : j - 1;
    } else if (c === '\n' || c === ';' || c === '|' || c === '&') {
      if (c === '&' && src[i + 1] === '&') i++;
      else if (c === '|' && src[i + 1] === '|') i++;
      endCommand();
    } else if (c === '>' || c === '<') {
      // A redirection: drop it and its target (`> f`, `2>&1`, `>> f`).
      if (word !== null && /^\d$/.test(word)) word = null;
      endWord();
      let j = i + 1;
      if (src[j] === '>' || src[j] === '&') j++;
      while (src[j] === ' ') j++;
      while (j < src.length && !/[\s;|&]/.test(src[j]!)) j++;
      i = j - 1;
    } else if (c === ' ' || c === '\t') endWord();
    else word = (word ?? '') + c;
  }
  endCommand();
  return commands;
}
