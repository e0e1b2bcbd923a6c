import type { AnswerClass } from './types.js';

/** Text(s) to look for in a body; null or an empty list: none. */
export type Texts = string | readonly string[] | null;

/** The part of the probe options that says what an answer means (contract, "Configuration"). */
export interface AnswerRuleOptions {
  readonly expectStatus: number;
  /** Text(s) of which the body must contain one (within maxBodyBytes) for the answer to mean primary. */
  readonly expectBody: Texts;
  /** Text(s) that must all be in the body too for the answer to mean primary (default: none). */
  readonly expectBodyAll?: Texts;
  /** Status(es) of the member's own "not primary" answer (default 503). */
  readonly notPrimaryStatus?: number | readonly number[];
  /** Text(s) of which a not-primary body must contain one (default: none needed). */
  readonly notPrimaryBody?: Texts;
}

/**
 * The answer rules of one options object, compiled once (texts to bytes, defaults applied,
 * the needles worth scanning for per status class) as haproxy compiles its expect rules when
 * it parses the config. Frozen; shared by every probe that uses those options.
 */
export interface AnswerRules {
  readonly expectStatus: number;
  readonly expectBody: readonly Buffer[];
  readonly expectBodyAll: readonly Buffer[];
  readonly notPrimaryStatus: readonly number[];
  readonly notPrimaryBody: readonly Buffer[];
  /** Needles of an answer with the expected status (and, if it is also a not-primary status, those too). */
  readonly primaryNeedles: readonly Buffer[];
  /** Needles of an answer with a not-primary status only. */
  readonly notPrimaryNeedles: readonly Buffer[];
}

const NONE: readonly Buffer[] = Object.freeze([]);

function toList<T>(v: T | readonly T[] | null | undefined, fallback: readonly T[]): readonly T[] {
  if (v === undefined) return fallback;
  if (v === null) return [];
  return Array.isArray(v) ? (v as readonly T[]) : [v as T];
}

/** An empty text would match every body: it is no rule at all, so it is dropped. */
function bytes(v: Texts | undefined): readonly Buffer[] {
  return Object.freeze(
    toList(v, [])
      .filter((x) => x !== '')
      .map((x) => Buffer.from(x, 'utf8')),
  );
}

/** Compiles the answer rules of `opts`. Pure. */
export function answerRules(opts: AnswerRuleOptions): AnswerRules {
  const expectBody = bytes(opts.expectBody);
  const expectBodyAll = bytes(opts.expectBodyAll);
  const notPrimaryStatus = Object.freeze([...toList(opts.notPrimaryStatus, [503])]);
  const notPrimaryBody = bytes(opts.notPrimaryBody);
  const overlap = notPrimaryStatus.includes(opts.expectStatus);
  return Object.freeze({
    expectStatus: opts.expectStatus,
    expectBody,
    expectBodyAll,
    notPrimaryStatus,
    notPrimaryBody,
    primaryNeedles: Object.freeze([...expectBody, ...expectBodyAll, ...(overlap ? notPrimaryBody : [])]),
    notPrimaryNeedles: notPrimaryBody,
  });
}

/** The needles worth looking for in an answer with this status (none: the status alone decides). */
export function needlesFor(rules: AnswerRules, status: number): readonly Buffer[] {
  if (status === rules.expectStatus) return rules.primaryNeedles;
  if (rules.notPrimaryStatus.includes(status)) return rules.notPrimaryNeedles;
  return NONE;
}

/**
 * The class of one answer. Pure. `found(needle)` says whether that needle of
 * `needlesFor(rules, status)` was seen; `complete` whether the body was read to its end or
 * cap. Null: not decidable yet (a needle may still come).
 */
export function classifyAnswer(
  rules: AnswerRules,
  status: number,
  found: (needle: Buffer) => boolean,
  complete: boolean,
): AnswerClass | null {
  const asPrimary = status === rules.expectStatus;
  const asNotPrimary = rules.notPrimaryStatus.includes(status);
  const any = (list: readonly Buffer[]): boolean => list.length === 0 || list.some(found);
  if (asPrimary && any(rules.expectBody) && rules.expectBodyAll.every(found)) return 'primary';
  // A primary needle may still come: only the whole body can say it is not there.
  if (asPrimary && !complete) return null;
  if (asNotPrimary && any(rules.notPrimaryBody)) return 'not_primary';
  if (asNotPrimary && !complete) return null;
  return 'unexpected';
}
