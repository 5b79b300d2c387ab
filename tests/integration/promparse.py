"""A strict parser of the Prometheus text exposition format, version 0.0.4.

https://prometheus.io/docs/instrumenting/exposition_formats/ -- stricter than
the Prometheus scraper where the format leaves room, so that a gateway that
passes here is read correctly by every consumer:
  - the text ends with a newline; lines are separated by "\\n" only;
  - every family has exactly one "# HELP" and exactly one "# TYPE" line, both
    before the family's first sample (with require_meta, the default);
  - a family's lines are contiguous, and no sample (name + label set) repeats;
  - metric and label names, label-value escapes (\\\\, \\", \\n) and float
    values (incl. NaN, +Inf, -Inf) follow the grammar; no label repeats;
  - histogram samples are NAME_bucket (with "le"), NAME_sum, NAME_count;
    each series has a le="+Inf" bucket equal to its _count and cumulative
    (non-decreasing) buckets in increasing le order; summaries are NAME (with
    "quantile"), NAME_sum, NAME_count; counters are never negative.
parse(text) returns {family name: Family}; any violation raises ParseError
naming the line.
"""
import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf)|NaN|nan")
TIMESTAMP = re.compile(r"-?\d+")
META = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(Exception):
    pass


class Sample:
    def __init__(self, name, labels, value, timestamp=None):
        self.name = name
        self.labels = labels  # dict
        self.value = value
        self.timestamp = timestamp

    def __repr__(self):
        return "%s%r %r" % (self.name, self.labels, self.value)


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []

    def find(self, suffix="", **labels):
        """Samples named NAME+suffix whose labels include the given ones."""
        return [s for s in self.samples if s.name == self.name + suffix and
                all(s.labels.get(k) == v for k, v in labels.items())]

    def total(self, suffix="", **labels):
        return sum(s.value for s in self.find(suffix, **labels))


def parse_float(tok, where):
    if not FLOAT.fullmatch(tok):
        raise ParseError("%s: bad value %r" % (where, tok))
    if tok in ("NaN", "nan"):
        return math.nan
    return float(tok)


def _unescape_help(s, where):
    out = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 >= len(s) or s[i + 1] not in "\\n":
                raise ParseError("%s: bad escape in HELP" % where)
            out.append("\\" if s[i + 1] == "\\" else "\n")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _skip_blanks(line, i):
    while i < len(line) and line[i] in " \t":
        i += 1
    return i


def _parse_labels(line, i, where):
    """line[i] == "{": returns (labels, index after "}")."""
    labels = {}
    i += 1
    while True:
        i = _skip_blanks(line, i)
        if i < len(line) and line[i] == "}":
            return labels, i + 1
        m = LABEL_NAME.match(line, i)
        if not m:
            raise ParseError("%s: bad label name at column %d" % (where, i))
        name = m.group(0)
        if name in labels:
            raise ParseError("%s: label %r repeated" % (where, name))
        i = _skip_blanks(line, m.end())
        if i >= len(line) or line[i] != "=":
            raise ParseError("%s: '=' expected after label %r" % (where, name))
        i = _skip_blanks(line, i + 1)
        if i >= len(line) or line[i] != '"':
            raise ParseError("%s: '\"' expected for label %r" % (where, name))
        i += 1
        val = []
        while True:
            if i >= len(line):
                raise ParseError("%s: unterminated value of label %r" % (where, name))
            ch = line[i]
            if ch == '"':
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(line) or line[i + 1] not in '\\"n':
                    raise ParseError("%s: bad escape in label %r" % (where, name))
                val.append("\n" if line[i + 1] == "n" else line[i + 1])
                i += 2
                continue
            val.append(ch)
            i += 1
        labels[name] = "".join(val)
        i = _skip_blanks(line, i)
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        if i < len(line) and line[i] == "}":
            return labels, i + 1
        raise ParseError("%s: ',' or '}' expected after label %r" % (where, name))


def _family_of(sample_name, families, current):
    """The family a sample name belongs to, by the current family's type."""
    if current is not None:
        f = families[current]
        if f.type == "histogram" and sample_name in (current + "_bucket", current + "_sum",
                                                     current + "_count"):
            return current
        if f.type == "summary" and sample_name in (current, current + "_sum", current + "_count"):
            return current
        if sample_name == current:
            return current
    return sample_name


def parse(text, require_meta=True):
    if not isinstance(text, str):
        text = text.decode("utf-8")
    if text and not text.endswith("\n"):
        raise ParseError("the exposition does not end with a newline")
    if "\r" in text:
        raise ParseError("carriage return in the exposition (lines end with \\n only)")
    families = {}
    order = []
    current = None
    closed = set()
    seen = set()

    def enter(name, where):
        nonlocal current
        if name != current:
            if name in closed:
                raise ParseError("%s: family %r is not contiguous" % (where, name))
            if current is not None:
                closed.add(current)
            current = name
        if name not in families:
            families[name] = Family(name)
            order.append(name)
        return families[name]

    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        where = "line %d (%r)" % (lineno, line[:120])
        if line.strip(" \t") == "":
            continue
        if line.startswith("#"):
            m = META.match(line)
            if m:
                kw, name, rest = m.group(1), m.group(2), m.group(3) or ""
                if not METRIC_NAME.fullmatch(name):
                    raise ParseError("%s: bad metric name in %s" % (where, kw))
                f = enter(name, where)
                if f.samples:
                    raise ParseError("%s: %s after the family's samples" % (where, kw))
                if kw == "HELP":
                    if f.help is not None:
                        raise ParseError("%s: second HELP for %r" % (where, name))
                    f.help = _unescape_help(rest, where)
                else:
                    if f.type is not None:
                        raise ParseError("%s: second TYPE for %r" % (where, name))
                    if rest.strip(" \t") not in TYPES:
                        raise ParseError("%s: unknown type %r" % (where, rest))
                    f.type = rest.strip(" \t")
            continue  # any other comment is ignored
        m = METRIC_NAME.match(line)
        if not m:
            raise ParseError("%s: bad metric name" % where)
        sname = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, where)
        if i >= len(line) or line[i] not in " \t":
            raise ParseError("%s: blank expected before the value" % where)
        toks = line[i:].strip(" \t").split()
        if not 1 <= len(toks) <= 2 or any(c in line[i:].strip(" \t") for c in "\r\v\f"):
            raise ParseError("%s: 'value [timestamp]' expected" % where)
        value = parse_float(toks[0], where)
        ts = None
        if len(toks) == 2:
            if not TIMESTAMP.fullmatch(toks[1]):
                raise ParseError("%s: bad timestamp %r" % (where, toks[1]))
            ts = int(toks[1])
        fname = _family_of(sname, families, current)
        f = enter(fname, where)
        if require_meta and (f.help is None or f.type is None):
            raise ParseError("%s: sample of %r without %s" % (where, fname,
                                                              "HELP" if f.help is None else "TYPE"))
        key = (sname, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError("%s: sample repeated" % where)
        seen.add(key)
        t = f.type or "untyped"
        if t == "histogram":
            if sname == fname + "_bucket":
                if "le" not in labels:
                    raise ParseError("%s: bucket without le" % where)
                parse_float(labels["le"], where + " le")
            elif "le" in labels:
                raise ParseError("%s: le on a non-bucket sample" % where)
        elif t == "summary":
            if sname == fname and "quantile" not in labels:
                raise ParseError("%s: summary sample without quantile" % where)
        if t == "counter" and not value >= 0:
            raise ParseError("%s: counter value %r" % (where, value))
        f.samples.append(Sample(sname, labels, value, ts))
    for name in order:
        f = families[name]
        if require_meta and (f.help is None or f.type is None):
            raise ParseError("family %r lacks %s" % (name, "HELP" if f.help is None else "TYPE"))
        if f.type == "histogram":
            _check_histogram(f)
        elif f.type == "summary":
            _check_summary(f)
    return families


def _series_key(labels, drop):
    return tuple(sorted((k, v) for k, v in labels.items() if k != drop))


def _check_histogram(f):
    series = {}
    for s in f.samples:
        d = series.setdefault(_series_key(s.labels, "le"), {"buckets": [], "sum": None, "count": None})
        if s.name == f.name + "_bucket":
            d["buckets"].append((float(s.labels["le"]), s.value, s.labels["le"]))
        elif s.name == f.name + "_sum":
            d["sum"] = s.value
        else:
            d["count"] = s.value
    for key, d in series.items():
        what = "histogram %s%s" % (f.name, dict(key))
        if not d["buckets"]:
            raise ParseError("%s: no buckets" % what)
        if d["count"] is None or d["sum"] is None:
            raise ParseError("%s: _count or _sum missing" % what)
        les = [b[0] for b in d["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ParseError("%s: buckets not in increasing le order: %r" % (what, les))
        if d["buckets"][-1][2] != "+Inf":
            raise ParseError("%s: last bucket is le=%r, not \"+Inf\"" % (what, d["buckets"][-1][2]))
        vals = [b[1] for b in d["buckets"]]
        for a, b in zip(vals, vals[1:]):
            if b < a:
                raise ParseError("%s: buckets not cumulative: %r" % (what, vals))
        if vals[-1] != d["count"]:
            raise ParseError("%s: +Inf bucket %r != _count %r" % (what, vals[-1], d["count"]))
        if d["count"] < 0 or d["sum"] < 0:
            raise ParseError("%s: negative _count/_sum" % what)


def _check_summary(f):
    counts = {}
    for s in f.samples:
        if s.name != f.name:
            counts.setdefault(_series_key(s.labels, "quantile"), set()).add(s.name)
    for key, names in counts.items():
        if names != {f.name + "_sum", f.name + "_count"}:
            raise ParseError("summary %s%s: _sum/_count missing" % (f.name, dict(key)))
