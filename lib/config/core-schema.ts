import { FAILSAFE_SCHEMA, type Schema, Type } from 'js-yaml';

/*
 * js-yaml 4's CORE_SCHEMA is its JSON schema widened in YAML 1.1's direction (`0b11` is 3,
 * `1_0.5` a float, `-.5` a string). hotconf documents keep the YAML 1.2 core schema they had with
 * the yaml library: the four implicit tags below use its patterns (yaml's `core` tags, which are
 * the YAML 1.2 spec's, section 10.3.2), so a value means the same whichever parser reads it.
 */

const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const TRUE = /^(?:[Tt]rue|TRUE)$/;
const FALSE = /^(?:[Ff]alse|FALSE)$/;
const DECIMAL = /^[-+]?[0-9]+$/;
const OCTAL = /^0o[0-7]+$/;
const HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const INFINITE = /^[-+]?\.(?:inf|Inf|INF)$/;
const NOT_A_NUMBER = /^\.(?:nan|NaN|NAN)$/;

const isNumber = (value: unknown): value is number => typeof value === 'number';

/** js-yaml resolves an explicitly tagged empty node (`a: !!int`) from null: it is the empty text. */
type Text = string | null;

/** Whether `text` may be a number (starts with a digit, a sign or a dot): most plain scalars are words, and skip the patterns. */
const numeric = (text: Text): text is string => {
  const c = text === null ? Number.NaN : text.charCodeAt(0);
  return (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46;
};

const nullTag = new Type('tag:yaml.org,2002:null', {
  kind: 'scalar',
  resolve: (text: Text) => text === null || (text.length <= 4 && NULL.test(text)),
  construct: () => null,
  predicate: (value: unknown) => value === null,
  represent: () => 'null',
});

const boolTag = new Type('tag:yaml.org,2002:bool', {
  kind: 'scalar',
  resolve: (text: Text) => text !== null && (text.length === 4 || text.length === 5) && (TRUE.test(text) || FALSE.test(text)),
  construct: (text: string) => TRUE.test(text),
  predicate: (value: unknown) => typeof value === 'boolean',
  represent: (value: object) => String(value),
});

const intTag = new Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (text: Text) => numeric(text) && (DECIMAL.test(text) || OCTAL.test(text) || HEX.test(text)),
  construct: (text: string) =>
    OCTAL.test(text) ? Number.parseInt(text.slice(2), 8) : HEX.test(text) ? Number.parseInt(text.slice(2), 16) : Number.parseInt(text, 10),
  predicate: (value: unknown) => isNumber(value) && Number.isInteger(value),
  represent: (value: object) => String(value),
});

const floatTag = new Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (text: Text) => numeric(text) && (FLOAT.test(text) || INFINITE.test(text) || NOT_A_NUMBER.test(text)),
  construct: (text: string) => {
    if (INFINITE.test(text)) return text.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    return NOT_A_NUMBER.test(text) ? Number.NaN : Number.parseFloat(text);
  },
  predicate: isNumber,
  represent: (value: object) => String(value),
});

/**
 * The YAML 1.2 core schema for js-yaml 4: strings, sequences and mappings (failsafe) and the
 * implicit `null`, `bool`, `int` (decimal, `0o` octal, `0x` hex) and `float` (with `.inf`,
 * `.nan`) of YAML 1.2 section 10.3.2, as the yaml library resolves them. No other tag is known:
 * `!!binary`, `!!set`, `!!timestamp`, `!!merge` (so `<<` is a plain key) are refused by js-yaml.
 */
export const YAML_CORE_SCHEMA: Schema = FAILSAFE_SCHEMA.extend({ implicit: [nullTag, boolTag, intTag, floatTag] });
