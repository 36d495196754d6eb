// Secret references as users write them: a Secrets Manager ARN (complete or partial), a Secrets
// Manager secret name, or an SSM Parameter Store parameter ARN. Shared by the webhook (to reject
// bad references at admission) and the fetcher (to route each one to the right API and region).

export type Reference = SecretsManagerReference | ParameterReference;

export interface SecretsManagerReference {
  service: 'secretsmanager';
  /** `arn`: complete ARN (name plus the 6-character suffix Secrets Manager appends);
   *  `partial-arn`: ARN without that suffix; `name`: a bare secret name. */
  kind: 'arn' | 'partial-arn' | 'name';
  /** What goes into SecretId: the ARN or name exactly as written. */
  id: string;
  /** The secret's name (from the ARN, without the random suffix when it is complete). */
  name: string;
  region?: string;
  account?: string;
  partition?: string;
}

export interface ParameterReference {
  service: 'ssm';
  kind: 'arn';
  id: string;
  /** The parameter name as GetParameters wants it (`/a/b` for hierarchical names). */
  name: string;
  region: string;
  account: string;
  partition: string;
}

export type ReferenceResult = { reference: Reference } | { error: string };

const PARTITION = /^aws(-[a-z]+)*$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const ACCOUNT = /^\d{12}$/;
// Secrets Manager secret names: 1-512 of letters, digits and /_+=.@-, and "!" in the names AWS
// services give the secrets they manage (RDS: rds!db-<id>, rds!cluster-<id>).
const SECRET_NAME = /^[A-Za-z0-9/_+=.@!-]{1,512}$/;
// SSM parameter names: letters, digits and . - _ / (hierarchy levels separated by /), 1-2048.
const PARAMETER_NAME = /^[A-Za-z0-9._\-/]{1,2048}$/;
// Secrets Manager appends `-` and six random characters to a secret's name to form its ARN.
const ARN_SUFFIX = /-[A-Za-z0-9]{6}$/;

export function isValidRegion(region: string): boolean {
  return REGION.test(region);
}

export function parseReference(raw: string): ReferenceResult {
  const ref = raw.trim();
  if (ref === '') return { error: 'is empty' };
  if (!ref.startsWith('arn:')) {
    if (!SECRET_NAME.test(ref)) {
      return {
        error: `"${ref}" is neither an ARN nor a valid secret name (1-512 of letters, digits and /_+=.@-)`,
      };
    }
    return { reference: { service: 'secretsmanager', kind: 'name', id: ref, name: ref } };
  }

  // arn:partition:service:region:account:resource
  const parts = ref.split(':');
  if (parts.length < 6) return { error: `"${ref}" is not a valid ARN (expected arn:partition:service:region:account:resource)` };
  const [, partition = '', service = '', region = '', account = ''] = parts;
  const resource = parts.slice(5).join(':');
  const problems: string[] = [];
  if (!PARTITION.test(partition)) problems.push(`partition "${partition}" is not valid`);
  if (!REGION.test(region)) problems.push(`region "${region}" is not valid`);
  if (!ACCOUNT.test(account)) problems.push(`account "${account}" is not a 12-digit account id`);

  if (service === 'secretsmanager') {
    if (!resource.startsWith('secret:')) problems.push('resource must start with "secret:"');
    const name = resource.slice('secret:'.length);
    if (resource.startsWith('secret:') && !SECRET_NAME.test(name)) problems.push(`secret name "${name}" is not valid`);
    if (problems.length > 0) return { error: `"${ref}" is not a valid Secrets Manager ARN: ${problems.join('; ')}` };
    const complete = ARN_SUFFIX.test(name);
    return {
      reference: {
        service: 'secretsmanager',
        kind: complete ? 'arn' : 'partial-arn',
        id: ref,
        name: complete ? name.replace(ARN_SUFFIX, '') : name,
        region,
        account,
        partition,
      },
    };
  }

  if (service === 'ssm') {
    if (!resource.startsWith('parameter/')) problems.push('resource must start with "parameter/"');
    const rest = resource.slice('parameter/'.length);
    if (resource.startsWith('parameter/') && (rest === '' || !PARAMETER_NAME.test(rest) || rest.includes('//'))) {
      problems.push(`parameter name "${rest}" is not valid`);
    }
    if (problems.length > 0) return { error: `"${ref}" is not a valid SSM parameter ARN: ${problems.join('; ')}` };
    // A hierarchical parameter /a/b has the ARN ...:parameter/a/b; a flat one, ...:parameter/name.
    const name = rest.includes('/') ? `/${rest}` : rest;
    return { reference: { service: 'ssm', kind: 'arn', id: ref, name, region, account, partition } };
  }

  return { error: `"${ref}" is an ARN of service "${service}"; only secretsmanager and ssm (Parameter Store) are supported` };
}

/**
 * A whole path: every Secrets Manager secret whose name starts with `prefix` (listed with
 * BatchGetSecretValue and a name filter), or every SSM parameter under `path` (GetParametersByPath,
 * recursive). Written `prefix/*`: a secret name or Secrets Manager ARN, or an SSM parameter ARN,
 * whose last segment is `*`.
 */
export type PathReference =
  | { service: 'secretsmanager'; id: string; /** Ends in "/". */ prefix: string; region?: string; account?: string; partition?: string }
  | { service: 'ssm'; id: string; /** Starts with "/", no trailing "/". */ path: string; region: string; account: string; partition: string };

export type PathReferenceResult = { path: PathReference } | { error: string };

export function isPathReference(raw: string): boolean {
  return raw.trim().endsWith('/*');
}

export function parsePathReference(raw: string): PathReferenceResult {
  const ref = raw.trim();
  if (!ref.endsWith('/*')) return { error: `"${ref}" is not a whole path (it must end in "/*")` };
  // The reference without "*" names a prefix; with a placeholder segment it parses as a plain one.
  const base = ref.slice(0, -1);
  const parsed = parseReference(`${base}x`);
  if ('error' in parsed) return { error: parsed.error.replace(`${base}x`, ref) };
  const r = parsed.reference;
  const rest = r.name.slice(0, -1);
  if (r.service === 'ssm') {
    const path = rest.replace(/\/$/, '');
    if (!path.startsWith('/') || path === '') return { error: `"${ref}" names no parameter path: write arn:…:parameter/<path>/*` };
    return { path: { service: 'ssm', id: ref, path, region: r.region, account: r.account, partition: r.partition } };
  }
  if (rest === '/' || rest === '') return { error: `"${ref}" names no prefix: write <prefix>/*, such as prod/app/*` };
  // A name filter starting with "!" lists every secret that does NOT match it.
  if (rest.startsWith('!')) return { error: `"${ref}" starts with "!", which a Secrets Manager name filter reads as "not"` };
  const out: PathReference = { service: 'secretsmanager', id: ref, prefix: rest };
  if (r.region !== undefined) out.region = r.region;
  if (r.account !== undefined) out.account = r.account;
  if (r.partition !== undefined) out.partition = r.partition;
  return { path: out };
}

/** The service and region (when it names one) of a reference or a whole path; undefined when it does not parse. */
export function referenceTarget(raw: string): { service: 'secretsmanager' | 'ssm'; region?: string } | undefined {
  const r = isPathReference(raw) ? parsePathReference(raw) : parseReference(raw);
  const parsed = 'reference' in r ? r.reference : 'path' in r ? r.path : undefined;
  if (parsed === undefined) return undefined;
  return parsed.region === undefined ? { service: parsed.service } : { service: parsed.service, region: parsed.region };
}
