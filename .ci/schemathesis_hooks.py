"""Schemathesis hooks for the rules of the Closeloop API that a JSON Schema cannot state.

Each rule below is enforced by the server (422 with `error.fields`) and documented in the
OpenAPI document's descriptions; without these hooks Schemathesis would count a request that
breaks one of them as "schema-valid data rejected". They only drop or adjust generated data
that breaks such a rule; every check stays on for every operation.

- `from` < `to` and `since` < `until`: a range must not be empty (compares two parameters).
- `min_score` <= `max_score` when listing follow-ups: a score band must not be empty.
- A report's range cut into `interval` buckets gives at most 1000 buckets (compares three).
- `send_at` is at most a year from now (depends on the clock).
- A follow-up's `outcome` must be one of `FOLLOWUP_OUTCOMES` (configuration, so the document
  says "a string" of a pattern): a generated outcome that fits the pattern is replaced by one
  of the default list that CI runs with (one that breaks the pattern is left, as negative data).
- A response's score is 0-10 for an NPS survey but 1-5 for a CSAT one (depends on the survey
  the id names): the document says 0-10, and a generated valid score is moved into 1-5,
  valid for both kinds.
"""

import re
from datetime import date, datetime, timedelta, timezone

import schemathesis


def _time(raw):
    """The server's reading of a time parameter (a date or RFC 3339), or None."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc)
        value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        return value if value.tzinfo else None
    except ValueError:
        return None


def _is(ctx, method, path):
    op = ctx.operation
    return op is not None and op.method.upper() == method and op.path == path


REPORTS = {("GET", "/api/v1/reports"), ("GET", "/api/v1/surveys/{id}/report")}
RANGES = REPORTS | {
    ("GET", "/api/v1/responses"),
    ("GET", "/api/v1/surveys/{id}/responses.csv"),
    ("GET", "/api/v1/followups"),
}


def _range_ok(op, query):
    if (op.method.upper(), op.path) not in RANGES or not isinstance(query, dict):
        return True
    lo_name, hi_name = ("from", "to") if (op.method.upper(), op.path) in REPORTS else ("since", "until")
    lo, hi = _time(query.get(lo_name)), _time(query.get(hi_name))
    if lo is not None and hi is not None and lo >= hi:
        return False
    if (op.method.upper(), op.path) in REPORTS:
        if lo_name in query and lo is None or hi_name in query and hi is None:
            return True  # an invalid time: negative data, keep it
        end = hi or datetime.now(timezone.utc)
        start = lo or end - timedelta(days=30)
        if start >= end:
            return False
        days = (end - start).days
        interval = query.get("interval")
        if interval is not None and not isinstance(interval, str):
            return True  # e.g. a repeated parameter: negative data, keep it
        if interval is None:
            interval = "day" if days <= 31 else "week" if days <= 182 else "month"
        per = {"day": 1, "week": 7, "month": 28}.get(interval)
        if per is not None and days // per > 1000:
            return False
    return True


def _score_band_ok(op, query):
    if (op.method.upper(), op.path) != ("GET", "/api/v1/followups") or not isinstance(query, dict):
        return True
    lo, hi = query.get("min_score"), query.get("max_score")
    if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool) and not isinstance(hi, bool):
        return lo <= hi
    return True  # absent, or not integers: negative data, keep it


def _send_at_ok(op, body):
    if (op.method.upper(), op.path) != ("POST", "/api/v1/surveys/{id}/invitations"):
        return True
    send_at = _time(body.get("send_at")) if isinstance(body, dict) else None
    return send_at is None or send_at <= datetime.now(timezone.utc) + timedelta(days=365)


# Case-level hooks run in every phase (examples, coverage, fuzzing, stateful).
@schemathesis.hook
def filter_case(ctx, case):
    op = case.operation
    return _range_ok(op, case.query) and _score_band_ok(op, case.query) and _send_at_ok(op, case.body)


OUTCOMES = [
    "resolved_issue",
    "explained",
    "compensated",
    "feature_request",
    "no_action_needed",
    "could_not_reach",
]
# `UpdateFollowup.outcome`'s pattern in the OpenAPI document.
OUTCOME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,49}")


@schemathesis.hook
def map_case(ctx, case):
    op = case.operation
    if (op.method.upper(), op.path) == ("PATCH", "/api/v1/followups/{id}") and isinstance(case.body, dict):
        outcome = case.body.get("outcome")
        # Only a schema-valid outcome (the document's pattern) is moved into the list: one that
        # breaks the pattern is negative data, which the server must refuse, so it stays.
        if isinstance(outcome, str) and OUTCOME_PATTERN.fullmatch(outcome) and outcome not in OUTCOMES:
            case.body["outcome"] = OUTCOMES[len(outcome) % len(OUTCOMES)]
    if (op.method.upper(), op.path) == ("POST", "/api/v1/responses") and isinstance(case.body, dict):
        score = case.body.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 10:
            if score == int(score):
                case.body["score"] = 1 + int(score) % 5
    return case
