/**
 * The default export of a CommonJS package compiled from ES modules (`exports.default = …`):
 * under Node's ESM loader (and TypeScript's NodeNext typing) a default import is the whole
 * `exports` object, so the function sits one level down; bundlers hand over the function.
 */
export function cjsDefault<T>(imported: { default: T } | T): T {
  const inner = (imported as { default?: T } | null)?.default;
  return inner ?? (imported as T);
}
