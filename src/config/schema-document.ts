/**
 * The JSON Schema of the config file, as an object: the source of schema/mirrorlb.schema.json.
 * The row sections (`health`, `proxy`, `shutdown`) come from their key rows (keys.ts), so a
 * key's type, default and documentation are written once; the rest of the file's structure
 * is written here. The loader validates against the shipped file (schema.ts), the one
 * editors use; test/config-schema-file.test.ts fails when the file is not what this
 * generates, and rewrites it with MIRRORLB_UPDATE_SCHEMA=1.
 */
import { poolSchema } from './pools.js';
import { DEFAULTS, HEALTH_KEYS, PROXY_KEYS, SHUTDOWN_KEYS, type KeyRow, type Rows } from './keys.js';
import { LOG_LEVELS, MIRROR_KINDS } from './types.js';
import { MAX_LOOPS, REUSE_PORT_NEEDED } from '../workers/support.js';

type Json = Record<string, unknown>;

/** A positive duration with its unit; the `off`-able patterns wrap it. */
const DURATION = '(?=[0-9.]*[1-9])[0-9]+(\\.[0-9]+)?(ms|s|m|h)';
const URL_PATTERN = '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+[^\\s]*$';
const TEXTS_MESSAGE = 'must be a non-empty string, a list of 1 to 8 non-empty strings, or null';
const STATUSES_MESSAGE = 'must be an HTTP status code (integer 100..599) or a list of 1 to 8 of them';

/** A row's property: its type's schema with the row's documentation and limits. */
function property(row: KeyRow): Json {
  const limits = { minimum: row.minimum, maximum: row.maximum };
  const head = { description: row.doc, errorMessage: row.errorMessage };
  switch (row.type) {
    case 'duration':
      return { $ref: '#/definitions/duration', description: row.doc };
    case 'duration-or-off':
      return {
        ...head,
        type: ['string', 'integer'],
        pattern: `^(off|0|${DURATION})$`,
        minimum: 0,
        maximum: 0,
      };
    case 'duration-or-never':
      return { ...head, type: 'string', pattern: `^(off|${DURATION})$` };
    case 'integer':
    case 'number':
      return { ...head, type: row.type, ...limits };
    case 'texts':
      return {
        description: row.doc,
        errorMessage: TEXTS_MESSAGE,
        type: ['string', 'array', 'null'],
        minLength: 1,
        minItems: 1,
        maxItems: 8,
        items: { type: 'string', minLength: 1 },
      };
    case 'statuses':
      return {
        description: row.doc,
        errorMessage: STATUSES_MESSAGE,
        type: ['integer', 'array'],
        minimum: 100,
        maximum: 599,
        minItems: 1,
        maxItems: 8,
        items: { type: 'integer', minimum: 100, maximum: 599 },
      };
    default:
      return row.type satisfies never;
  }
}

function object(description: string, properties: Json): Json {
  return { description, type: 'object', additionalProperties: false, properties };
}

function mapRows(rows: Rows, f: (key: string, row: KeyRow) => Json): Json {
  return Object.fromEntries(Object.entries(rows).map(([k, r]) => [k, f(k, r)]));
}

/** A mirror's override section: every key, no default (it inherits), and any keys that are no rows. */
function override(description: string, rows: Rows, more: Json = {}): Json {
  return object(description, { ...mapRows(rows, (_, r) => property(r)), ...more });
}

/** A file named in `tls`: resolved against the config file's directory, read at every load. */
function pemFile(what: string): Json {
  return {
    description: `${what} Read when the config is loaded (and at every reload, so a rotated file is picked up); a relative path is relative to the config file's directory.`,
    errorMessage: 'must be a file path',
    type: 'string',
    minLength: 1,
  };
}

const TLS = object(
  "TLS options of the https:// check URLs. On a mirror's health, for all its members; a member's own tls overrides it key by key.",
  {
    ca: pemFile(
      "PEM file of the CA certificate(s) the members' certificates must chain to, instead of Node's built-in roots.",
    ),
    cert: pemFile(
      'PEM client certificate, for a status endpoint that requires one (Patroni: verify_client: required).',
    ),
    key: pemFile('PEM private key of cert (unencrypted); it must match the certificate.'),
    servername: {
      description:
        'Name sent as SNI and verified in the certificate, instead of the host of the check URL (for a URL that uses an address).',
      errorMessage: 'must be a host name',
      type: 'string',
      pattern: '^[A-Za-z0-9_.-]+$',
    },
    verify: {
      description:
        "Whether the members' certificates are verified (default true). false accepts any certificate, so anyone on the path can answer for a member; check warns about it.",
      type: 'boolean',
    },
  },
);

/** A top-level inherited section: each key refers to its override and adds the default. */
function inherited(name: string, description: string, rows: Rows): Json {
  return object(
    description,
    mapRows(rows, (k, r) => ({ $ref: `#/definitions/${name}_override/properties/${k}`, default: r.default })),
  );
}

/** Drops undefined members, as JSON.stringify would, so the object equals the parsed file. */
function clean(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clean);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [k, clean(x)]),
  );
}

export function schemaDocument(): Json {
  return clean({
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'mirrorlb.schema.json',
    title: 'mirrorlb configuration',
    description:
      'Configuration of mirrorlb, the primary-only TCP balancer for database mirrors. Only `mirrors` is required; every other key has the default shown. String values may reference environment variables as ${VAR} or ${VAR:-default} ($$ is a literal $). `errorMessage` is a non-standard annotation that editors (VS Code) show instead of their generic message.',
    type: 'object',
    additionalProperties: false,
    required: ['mirrors'],
    properties: {
      mirrors: {
        description:
          'The mirror sets to balance: each gets its own listen address and sends every new client to the member that is currently primary.',
        errorMessage: 'must be a list of 1 to 64 mirrors',
        type: 'array',
        minItems: 1,
        maxItems: 64,
        items: { $ref: '#/definitions/mirror' },
      },
      kind: {
        $ref: '#/definitions/kind',
        description:
          "Kind of every mirror that does not set its own `kind`. Unset: each mirror's kind is inferred from its check URLs (a path ending in mirror_status.cxw: iris; a Patroni REST role path such as /primary, /leader, /master or /read-write: patroni; otherwise generic), and `mirrorlb check` says what it inferred.",
      },
      health: { $ref: '#/definitions/health' },
      proxy: { $ref: '#/definitions/proxy' },
      admin: { $ref: '#/definitions/admin' },
      log: { $ref: '#/definitions/log' },
      shutdown: { $ref: '#/definitions/shutdown' },
      metrics: { $ref: '#/definitions/metrics' },
      workers: {
        description: `Data-plane event loops: 1 (the default) serves every mirror on the main thread, as mirrorlb always did; N runs N worker threads, each accepting on every mirror's port (reusePort: the kernel spreads new connections), with health checks, admin, metrics and reloads on the main thread and every routing rule and limit holding for the process as a whole. auto: one per available core where reusePort exists, else 1. Above 1 needs ${REUSE_PORT_NEEDED}. Read at start; a reload does not change it.`,
        errorMessage: `must be auto or a whole number from 1 to ${MAX_LOOPS}`,
        oneOf: [
          { type: 'string', enum: ['auto'] },
          { type: 'integer', minimum: 1, maximum: MAX_LOOPS },
        ],
        default: DEFAULTS.workers,
      },
    },
    definitions: {
      name: {
        description:
          "Name used in logs, metrics labels and admin URLs: a letter or digit, then up to 62 letters, digits, '_', '.' or '-'.",
        errorMessage:
          "must be a name of 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit",
        type: 'string',
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$',
      },
      hostport: {
        description:
          'host:port; IPv6 addresses in brackets, as [::1]:1972. Port 1..65535 (a listen address may use 0: any free port).',
        errorMessage: 'must be host:port, e.g. 0.0.0.0:1972 or [::1]:1972',
        type: 'string',
        pattern: '^(\\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\\]|[A-Za-z0-9_.-]+):[0-9]+$',
        examples: ['0.0.0.0:1972', '[::1]:1972', 'ap1a.example.com:1972'],
      },
      duration: {
        description: 'A positive duration: a number with unit ms, s, m or h.',
        errorMessage: 'must be a positive duration like 250ms, 1.5s, 2m or 1h',
        type: 'string',
        pattern: `^${DURATION}$`,
        examples: ['250ms', '1.5s', '2m', '1h'],
      },
      check_url: {
        description:
          "http(s) URL of the member's mirror status page (/csp/mirror_status.cxw). It must reach this one member (through a Web Gateway path bound to it), never a mirror-aware path.",
        errorMessage: 'must be an http:// or https:// URL',
        type: 'string',
        pattern: URL_PATTERN,
        examples: ['http://ap1a:52773/csp/mirror_status.cxw', 'http://webgw1/ap1a/csp/mirror_status.cxw'],
      },
      member: {
        description: 'One member of a mirror set.',
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address', 'check'],
        properties: {
          name: {
            $ref: '#/definitions/name',
            description: 'Member name, unique across all mirrors (e.g. ap1a).',
          },
          address: {
            $ref: '#/definitions/hostport',
            description:
              'SuperServer (or database) host:port that clients are proxied to while this member is primary.',
          },
          tls: {
            $ref: '#/definitions/tls',
            description:
              "This member's TLS options for its https:// check URLs, over the mirror's health.tls key by key.",
          },
          check: {
            description:
              'Status URL of this member, or a list of 1 to 8 URLs that reach the same member (e.g. through each of two Web Gateways): the first that answers at all decides.',
            errorMessage: 'must be an http(s) URL or a list of 1 to 8 of them',
            type: ['string', 'array'],
            pattern: URL_PATTERN,
            minItems: 1,
            maxItems: 8,
            items: { $ref: '#/definitions/check_url' },
          },
        },
      },
      mirror: {
        description: 'One mirror set: a listen address and the members behind it.',
        type: 'object',
        additionalProperties: false,
        required: ['name', 'listen', 'members'],
        properties: {
          name: { $ref: '#/definitions/name', description: 'Mirror name, unique (e.g. ap1).' },
          listen: {
            $ref: '#/definitions/hostport',
            description:
              'Address clients connect to; each new connection is forwarded to the current primary. Two mirrors cannot share a port on the same (or a wildcard) host.',
          },
          kind: {
            $ref: '#/definitions/kind',
            description:
              'What this mirror is (iris, patroni or generic); unset: the top-level kind, else inferred from the check URLs (see the top-level kind).',
          },
          on_conflict: {
            description:
              "When two members claim primary at once: 'newest' sends clients to the one that became primary last and closes the other's sessions; 'hold' holds new clients until only one claims it.",
            errorMessage: 'must be newest or hold',
            type: 'string',
            enum: ['newest', 'hold'],
            default: DEFAULTS.onConflict,
          },
          health: {
            $ref: '#/definitions/health_override',
            description:
              'Per-mirror override of any top-level health key; keys not given here inherit the top-level value.',
          },
          proxy: {
            $ref: '#/definitions/proxy_override',
            description:
              'Per-mirror override of any top-level proxy key; keys not given here inherit the top-level value.',
          },
          pools: {
            description:
              'Read pools: each a listener of its own that balances new clients over the members its pool check admits (replicas, synchronous standbys).',
            type: 'array',
            maxItems: 8,
            errorMessage: 'must be a list of up to 8 pools',
            items: { $ref: '#/definitions/pool' },
          },
          members: {
            description: 'The members of this mirror set (usually the two failover members).',
            errorMessage: 'must be a list of 1 to 16 members',
            type: 'array',
            minItems: 1,
            maxItems: 16,
            items: { $ref: '#/definitions/member' },
          },
        },
      },
      pool: poolSchema(),
      health_override: override(
        'Health-check settings of this mirror; unset keys inherit the top-level health value.',
        HEALTH_KEYS,
        {
          tls: {
            $ref: '#/definitions/tls',
            description: "TLS options of this mirror's https:// check URLs (a member's tls overrides them).",
          },
        },
      ),
      health: inherited(
        'health',
        'Health-check settings for every mirror (a mirror can override any key under its own `health`).',
        HEALTH_KEYS,
      ),
      proxy_override: override(
        'Proxy settings of this mirror; unset keys inherit the top-level proxy value.',
        PROXY_KEYS,
      ),
      proxy: inherited(
        'proxy',
        'Proxy settings for every mirror (a mirror can override any key under its own `proxy`).',
        PROXY_KEYS,
      ),
      admin: object(
        'The admin HTTP listener: /metrics, /status, the status page, /healthz, /readyz and the maintenance actions.',
        {
          listen: {
            $ref: '#/definitions/hostport',
            description: 'Address of the admin HTTP listener. Keep it on loopback unless a token is set.',
            default: DEFAULTS.admin.listen,
          },
          token: {
            description:
              'Bearer token required by the POST maintenance actions (drain, disable, enable), or null for none. Use ${VAR} to keep it out of the file.',
            errorMessage: 'must be null or a token of at least 8 printable ASCII characters without spaces',
            type: ['string', 'null'],
            minLength: 8,
            pattern: '^[!-~]+$',
            default: DEFAULTS.admin.token,
          },
        },
      ),
      log: object('Logging (JSON lines on stdout).', {
        level: {
          description: 'Lowest level logged.',
          errorMessage: `must be one of ${LOG_LEVELS.join(', ')}`,
          type: 'string',
          enum: [...LOG_LEVELS],
          default: DEFAULTS.log.level,
        },
        sessions: {
          description:
            "One record per client session at its end (message 'session'): client address and port, member, bytes each way, duration and how it ended, as haproxy's tcplog. Off: no per-connection work at all. A reload applies it to sessions that start after it.",
          type: 'boolean',
          default: DEFAULTS.log.sessions,
        },
      }),
      metrics: object('Prometheus metrics (GET /metrics on the admin listener).', {
        enabled: {
          description:
            'Per-connection metrics (connections and bytes, updated on the data path). false leaves health, failover and process metrics on and takes the per-session counting off the data path. Read at start; a reload does not change it.',
          type: 'boolean',
          default: DEFAULTS.metrics.enabled,
        },
      }),
      shutdown: object(
        'What SIGTERM/SIGINT do.',
        mapRows(SHUTDOWN_KEYS, (_, r) => ({ ...property(r), default: r.default })),
      ),
      tls: TLS,
      kind: {
        description:
          'What the mirror is: iris, patroni or generic. It picks the defaults of expect_body, not_primary_status, not_primary_body and fence_after (docs/configuration.md says each and why); a health key set in the file always wins.',
        errorMessage: 'must be iris, patroni or generic',
        type: 'string',
        enum: [...MIRROR_KINDS],
      },
    },
  }) as Json;
}
