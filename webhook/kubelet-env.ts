// The kubelet expands `$(NAME)` in a container's env values (to the value of an earlier variable
// of the same container, left as written when there is none) and turns `$$` into `$`. A value the
// webhook writes into env (the fetcher's spec, its network settings) is data, not a template: it
// goes in escaped so the container receives exactly the text the webhook meant.

/** `value` as an env value the kubelet passes on unchanged: every `$` doubled. */
export function kubeletLiteral(value: string): string {
  return value.includes('$') ? value.replaceAll('$', '$$$$') : value;
}

/**
 * What a container receives for `value`, with `vars` the variables defined before it: the
 * kubelet's own rules (k8s.io/kubernetes third_party/forked/golang/expansion). Tests and readers
 * of a stored pod use it to see what the fetcher will see.
 */
export function expandLikeKubelet(value: string, vars: Readonly<Record<string, string>> = {}): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== '$' || i === value.length - 1) {
      out += c;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = value.indexOf(')', i + 2);
      if (close === -1) {
        out += '$(';
        i++;
      } else {
        const name = value.slice(i + 2, close);
        out += Object.hasOwn(vars, name) ? vars[name] : `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i++;
    }
  }
  return out;
}
