// Reading a wasm module's sections, for scripts/wasm-names.mjs (the build),
// scripts/wasm-exports.mjs and bench/wasm-size.mjs: the binary format's LEB128 integers
// (and their encoding, for a section written back), names and section headers.

/** A position in a module's bytes. */
export class Cursor {
  constructor(bytes, at = 0) {
    this.b = bytes;
    this.at = at;
  }

  /** An unsigned LEB128 integer. */
  leb() {
    let r = 0;
    let s = 0;
    let x;
    do {
      x = this.b[this.at++];
      r += (x & 0x7f) * 2 ** s;
      s += 7;
    } while (x & 0x80);
    return r;
  }

  /** A name: its length, then UTF-8. */
  str() {
    const n = this.leb();
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
}

/** `n` as an unsigned LEB128 integer (the inverse of `Cursor.leb`). */
export function uleb(n) {
  const out = [];
  do {
    let x = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) x |= 0x80;
    out.push(x);
  } while (n);
  return Buffer.from(out);
}

/** The module's sections in order: `id`, `from` (its first byte), `start` and `end` (its
 *  contents) and, for a custom section, its `name` and where its payload starts (`body`). */
export function* sections(bytes, path = 'the module') {
  if (bytes.readUInt32LE(0) !== 0x6d736100) throw new Error(`${path} is not a wasm module`);
  const c = new Cursor(bytes, 8);
  while (c.at < bytes.length) {
    const from = c.at;
    const id = bytes[c.at++];
    const len = c.leb();
    const start = c.at;
    const end = start + len;
    const section = { id, from, start, end };
    if (id === 0) {
      section.name = c.str();
      section.body = c.at;
    }
    yield section;
    c.at = end;
  }
}

/** The function names (index → name) of a `name` custom section. */
export function functionNames(bytes, section) {
  const names = {};
  const c = new Cursor(bytes, section.body);
  while (c.at < section.end) {
    const sub = bytes[c.at++];
    const subEnd = c.leb() + c.at;
    if (sub === 1) {
      for (let n = c.leb(); n > 0; n--) {
        const idx = c.leb();
        names[idx] = c.str();
      }
    }
    c.at = subEnd;
  }
  return names;
}
