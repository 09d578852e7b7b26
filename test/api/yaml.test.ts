/** The YAML layer: keys kept as written (both ways), kubectl's reading of scalars, clear errors. */
import { describe, expect, it } from 'vitest';
import { toYaml } from '../../src/api/render.js';
import { ManifestParseError, parseManifests } from '../../src/kube/apply.js';

describe('parseManifests', () => {
  it('keeps schema keys such as default and x-kubernetes-* as written', () => {
    const [crd] = parseManifests('apiVersion: v1\nkind: X\nmetadata: {name: x}\nschema:\n  default: true\n  x-kubernetes-map-type: atomic\n  _default: 1\n');
    expect(crd).toEqual({ apiVersion: 'v1', kind: 'X', metadata: { name: 'x' }, schema: { default: true, 'x-kubernetes-map-type': 'atomic', _default: 1 } });
  });

  it('reads scalars as the API server does: on/yes are booleans, times and dates stay strings', () => {
    const [doc] = parseManifests('kind: X\nmetadata: {name: x}\na: on\nb: yes\nc: "on"\nd: 1:20\ne: 2024-01-01\nf: 0.5\n');
    expect(doc).toMatchObject({ a: true, b: true, c: 'on', d: '1:20', e: '2024-01-01', f: 0.5 });
  });

  it('skips empty documents, comments and lists without kind', () => {
    expect(parseManifests('# only a comment\n---\n---\n- a\n---\nkind: A\nmetadata: {name: a}\n').map((m) => m.kind)).toEqual(['A']);
  });

  it('names the problem in text that is not YAML', () => {
    expect(() => parseManifests('kind: A\nmetadata: {name: a\n')).toThrow(ManifestParseError);
    expect(() => parseManifests('kind: A\nkind: B\nmetadata: {name: a}\n')).toThrow(/invalid YAML/);
  });
});

describe('toYaml', () => {
  it('writes shared sub-objects out in full and quotes strings YAML 1.1 reads as booleans', () => {
    const shared = { type: 'object', default: {} };
    const text = toYaml({ a: shared, b: shared, c: 'on', d: 'yes', e: 'True' });
    expect(text).not.toMatch(/[&*]a\d/);
    expect(text).toContain('c: "on"');
    expect(parseManifests(`kind: K\nmetadata: {name: k}\n${text}`)[0]).toMatchObject({ a: shared, b: shared, c: 'on', d: 'yes', e: 'True' });
  });
});
