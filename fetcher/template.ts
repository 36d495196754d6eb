// Templates: text with `{{ path }}` placeholders, each replaced by the value at that path in the
// secret's JSON (see pointer.ts), inserted as it is: no escaping, no sections, no partials, no
// logic. Parsed at admission by the webhook (a malformed template is refused there, naming the
// placeholder) and again by the fetcher, which renders it. Messages name placeholders and paths,
// never a value.
//
// Why not a template library: the logic-less ones users know (mustache.js, handlebars in its
// mustache subset) render a missing name as an empty string, where a file with an empty password
// must not be written; they HTML-escape `{{ }}` by default; and they bring sections, partials and
// delimiter changes that would each need refusing. The grammar below is one scan.

import { parsePath, resolve } from './pointer.js';

/** Bounds checked before any scan: a template is a line or a few, not a document. */
export const MAX_TEMPLATE_LENGTH = 16 * 1024;
export const MAX_PLACEHOLDERS = 256;

export interface Placeholder {
  /** The placeholder as written, braces included, for messages. */
  text: string;
  tokens: string[];
}

export type TemplatePart = string | Placeholder;

export type TemplateResult = { parts: TemplatePart[] } | { error: string };

const shown = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

export function parseTemplate(template: string): TemplateResult {
  if (template.length > MAX_TEMPLATE_LENGTH) return { error: `is ${template.length} characters long, over the maximum of ${MAX_TEMPLATE_LENGTH}` };
  const parts: TemplatePart[] = [];
  let placeholders = 0;
  let from = 0;
  for (;;) {
    const open = template.indexOf('{{', from);
    if (open < 0) break;
    const close = template.indexOf('}}', open + 2);
    if (close < 0) return { error: `has a "{{" at character ${open + 1} that no "}}" closes` };
    const text = template.slice(open, close + 2);
    const inner = template.slice(open + 2, close).trim();
    if (inner === '') return { error: `has an empty placeholder ${shown(text)}` };
    if (/^[#^>!&={]/.test(inner)) {
      return { error: `placeholder ${shown(text)} is not a path: templates have no sections, partials, comments or unescaped forms (values are never escaped)` };
    }
    const path = parsePath(inner);
    if ('error' in path) return { error: `placeholder ${shown(text)}: ${path.error}` };
    if (++placeholders > MAX_PLACEHOLDERS) return { error: `has more than ${MAX_PLACEHOLDERS} placeholders` };
    if (open > from) parts.push(template.slice(from, open));
    parts.push({ text, tokens: path.tokens });
    from = close + 2;
  }
  if (from < template.length) parts.push(template.slice(from));
  if (placeholders === 0) return { error: 'has no {{ path }} placeholder: write the text as a plain secret, or name a value of the secret' };
  return { parts };
}

/** A JSON value as text: strings as they are, anything else as JSON (`5432`, `true`, `{"a":1}`). */
export function valueText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export type RenderTemplateResult = { text: string } | { missing: Array<{ placeholder: string; why: string }> };

/** Every placeholder resolved in `value`, or every one that is not (by placeholder and path, never a value). */
export function renderTemplate(parts: readonly TemplatePart[], value: unknown): RenderTemplateResult {
  const out: string[] = [];
  const missing: Array<{ placeholder: string; why: string }> = [];
  for (const p of parts) {
    if (typeof p === 'string') {
      out.push(p);
      continue;
    }
    const r = resolve(value, p.tokens);
    if (r.found) out.push(valueText(r.value));
    else missing.push({ placeholder: p.text, why: r.missing });
  }
  return missing.length > 0 ? { missing } : { text: out.join('') };
}
