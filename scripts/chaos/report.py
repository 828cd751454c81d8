"""The end of a suite run: what was injected, what was measured, and the checks."""
import collections
import os
import statistics

import db
from faults import describe
from stream import HANDLED, UNHANDLED
from util import SMTP_SLACK, SMTP_TIMEOUT, rel, say

FINISHED = ("applied", "ignored", "stale")


def fmt_counts(counter):
    return ", ".join("%s: %d" % (k, v) for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))


def report(suite):
    base, chaos = suite.phases
    check = suite.check
    stream = suite.stream

    # The stream itself.
    covered = set(stream.covered_types())
    check("the stream holds every handled event type (%d) in both API shapes" % len(HANDLED),
          set(HANDLED) <= covered and all(
              {e["type"] for s in stream.stories if s.shape == shape for _, e in s.events} >= set(HANDLED)
              for shape in ("acacia", "dahlia")),
          "missing: %s" % sorted(set(HANDLED) - covered))

    for phase in (base, chaos):
        phase_checks(suite, phase)

    # The faults and the recoveries.
    f = chaos.faults
    say("")
    say("== injected (%d faults) ==" % len(f.injected))
    for t, kind, text in sorted(f.injected):
        say("  %s %s" % (rel(t), text))
    kinds = collections.Counter(k for _, k, _ in f.injected)
    say("  by kind: " + fmt_counts(kinds))
    expected = ["kill_worker", "pg_immediate", "pg_fast", "pg_terminate", "smtp_down", "smtp_silent", "app_down"]
    check("every kind of fault was injected at least once", all(kinds[k] for k in expected),
          "missing: %s" % [k for k in expected if not kinds[k]])
    check("no fault lane broke", not kinds["lane_error"])

    say("")
    say("== recovery (bound %ds each) ==" % suite.cfg["recovery_bound"])
    by_kind = collections.defaultdict(list)
    for rec in f.recoveries:
        by_kind[rec["kind"]].append(rec)
        extra = ""
        if rec["kind"].startswith("pg_"):
            first = receiver_back(chaos.sender, rec["back"])
            extra = "; receiver answered 2xx again %s" % (
                "%.1fs after" % first if first is not None else "(no delivery right then)")
            if rec["kind"] != "pg_terminate":
                extra += "; PostgreSQL was down %.1fs" % (rec["back"] - rec["at"])
        say("  %s %s%s" % (rel(rec["at"]), describe(rec, suite.cfg), extra))
    for kind, recs in sorted(by_kind.items()):
        say("  %-13s n=%d  %s" % (kind, len(recs), "; ".join(
            "%s min %.1fs median %.1fs max %.1fs" % (label, min(v), statistics.median(v), max(v))
            for label, v in summary(kind, recs, chaos) if v)))
        check("after %s, the backlog from before was done within %ds (%d times)" % (
            kind, suite.cfg["recovery_bound"], len(recs)),
            all(r["secs"] is not None for r in recs),
            "; ".join(describe(r, suite.cfg) for r in recs if r["secs"] is None))

    check("silent SMTP was exercised (the workers tried to send while it was silent)",
          any(r[0] for r in f.silent), "no connection was made while it was silent")
    for n, (conns, longest, held) in enumerate(r for r in f.silent if r[0]):
        limit = SMTP_TIMEOUT + SMTP_SLACK
        over = [h for h in held if h > limit]
        check("silent SMTP #%d: no client waited for a greeting longer than BILLHOOK_SMTP_TIMEOUT=%ds + %ds" % (
              n + 1, SMTP_TIMEOUT, SMTP_SLACK), not over and longest <= limit,
              "%d of %d connections still waiting after more than %ds when the silence ended (oldest %.1fs): "
              "the attempt never timed out; longest wait of a client that gave up: %.1fs" % (
                  len(over), conns, limit, max(held) if held else 0, longest))

    # The comparison with the baseline.
    say("")
    say("== final states: chaos run against the baseline ==")
    snap_a, snap_b = db.snapshot(base.url), db.snapshot(chaos.url)
    diffs = {d[0]: d for d in db.differences(snap_a, snap_b)}
    for name, _ in db.SNAPSHOT:
        rows = len(snap_a[name])
        if name in diffs:
            _, na, nb, only_a, only_b = diffs[name]
            check("%s equal to the baseline" % name, False,
                  "baseline %d rows, chaos %d; only in baseline: %s; only in chaos: %s" % (
                      na, nb, [r[:300] for r in only_a], [r[:300] for r in only_b]))
        else:
            check("%s equal to the baseline (%d rows)" % (name, rows), True)
    sum_a, sum_b = db.scalar(base.url, db.LEDGER_SUM), db.scalar(chaos.url, db.LEDGER_SUM)
    say("  ledger sum: baseline %d, chaos %d" % (sum_a, sum_b))
    check("ledger sum equal to the baseline (%d)" % sum_a, sum_a == sum_b, "chaos: %d" % sum_b)
    runs = collections.Counter(r["state"] for r in snap_b["dunning_runs"])
    say("  dunning runs: %s; orders: %s" % (fmt_counts(runs), fmt_counts(
        collections.Counter(r["status"] for r in snap_b["orders"]))))

    say("")
    say("== checks ==")
    for name, ok, detail in suite.checks:
        say("  %s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok or not detail else ": " + detail))
    failed = sum(1 for c in suite.checks if not c[1])
    duplicates = any(d for phase in (base, chaos) for d in phase.duplicates)
    if failed or duplicates:
        # scripts/chaos.sh keeps the run directory when this file is there.
        open(os.path.join(suite.dir, "keep"), "w").close()
        say("logs kept in %s%s" % (suite.dir, "" if failed else " (duplicates to look at)"))
    return failed


def receiver_back(sender, back):
    """Seconds from `back` to the receiver's first 2xx, when a delivery was being attempted
    then (within 2 s); None when there was no traffic to tell."""
    with sender.lock:
        after = [a for a in sender.answers if a[0] >= back]
    if not after or min(a[0] for a in after) - back > 2:
        return None
    first = sender.first_2xx_after(back)
    return first - back if first else None


def summary(kind, recs, chaos):
    """The recovery times of one fault kind, by what they measure."""
    done = [r["secs"] for r in recs if r["secs"] is not None]
    if not kind.startswith("pg_"):
        return [("pending %s done after the service was back:" % recs[0]["what"].split()[0], done)]
    firsts = [receiver_back(chaos.sender, r["back"]) for r in recs]
    return [("receiver 2xx again", [f for f in firsts if f is not None]),
            ("backlog from before applied", done),
            ("first new event applied", [r["first_new"] for r in recs if r["first_new"] is not None])]


def phase_checks(suite, phase):
    check = suite.check
    p = phase.name + ": "
    url = phase.url
    stream = suite.stream
    sender = phase.sender
    counts = sender.status_counts()
    say("")
    say("== %s ==" % phase.name)
    say("  receiver answers: " + fmt_counts(counts))
    say("  sent in %.0fs; waves applied (gates) after %s; settled%s %.0fs after the faults stopped%s" % (
        phase.t_sent - phase.t_start, ", ".join("%.0fs%s" % (g[1], "" if g[0] else " (NOT)") for g in phase.gates),
        "" if phase.settled else " NOT", phase.settle_secs,
        "" if phase.settled else "; left: %s" % phase.settle_left))

    answers_500 = [a for a in sender.answers if a[2] == 500]
    near = ""
    if answers_500 and phase.faults:
        near = "; first at %s, nearest faults before them: %s" % (rel(answers_500[0][0]), sorted({
            max(((t, k) for t, k, _ in phase.faults.injected if t <= a[0]), default=(0, "none"))[1]
            for a in answers_500}))
    check(p + "the receiver never answered 500", not answers_500, "%d answers 500%s" % (len(answers_500), near))
    odd = {k: v for k, v in counts.items() if isinstance(k, int) and not (200 <= k < 300 or k in (500, 503))}
    check(p + "no answer other than 2xx, 503 (and 500 above)", not odd, fmt_counts(odd))
    check(p + "every event was answered 2xx in the end", not sender.given_up,
          "%d events never accepted within %ds, e.g. %s" % (
              len(sender.given_up), suite.cfg["delivery_deadline"], sorted(sender.given_up)[:3]))

    stored = {r["id"]: r for r in db.rows(url, "SELECT id, type, status FROM webhook_events")}
    missing = [e for e in sender.accepted if e not in stored]
    check(p + "every event answered 2xx is stored (%d)" % len(sender.accepted), not missing,
          "%d missing, e.g. %s" % (len(missing), missing[:3]))
    extra = [e for e in stored if e not in stream.bodies]
    check(p + "no event stored that was not sent", not extra, str(extra[:3]))
    statuses = collections.Counter(r["status"] for r in stored.values())
    say("  stored events: " + fmt_counts(statuses))
    unfinished = {k: v for k, v in statuses.items() if k not in FINISHED}
    check(p + "every stored event is applied, ignored or stale", not unfinished, fmt_counts(unfinished))
    wrong = [r["id"] for r in stored.values()
             if (r["status"] == "ignored") != (r["type"] in UNHANDLED) and r["status"] in FINISHED]
    check(p + "ignored exactly the unhandled types", not wrong, str(wrong[:3]))

    dupes = db.rows(url, "SELECT entity, action, count(*) AS n FROM (SELECT event_id, entity, entity_id, action "
                         "FROM audit_log WHERE event_id IS NOT NULL GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d "
                         "GROUP BY 1, 2 ORDER BY 1, 2")
    check(p + "no event's effect recorded twice in audit_log (applied once)", not dupes,
          "; ".join("%s/%s: %d" % (d["entity"], d["action"], d["n"]) for d in dupes))
    twice = db.scalar(url, "SELECT count(*) FROM (SELECT source, kind FROM ledger_entries GROUP BY 1, 2 HAVING count(*) > 1) d")
    check(p + "no ledger entry twice", twice == 0, "%d" % twice)

    emails = collections.Counter(dict((r["status"], r["n"]) for r in db.rows(
        url, "SELECT status, count(*) AS n FROM emails GROUP BY status")))
    notices = collections.Counter(dict((r["status"], r["n"]) for r in db.rows(
        url, "SELECT status, count(*) AS n FROM app_notifications GROUP BY status")))
    say("  emails: %s; notices: %s" % (fmt_counts(emails), fmt_counts(notices)))
    check(p + "no email pending or dead", not emails["pending"] and not emails["dead"], fmt_counts(emails))
    check(p + "no notice pending or dead", not notices["pending"] and not notices["dead"], fmt_counts(notices))
    letters = db.rows(url, "SELECT kind, left(error, 160) AS error, count(*) AS n FROM dead_letters GROUP BY 1, 2")
    check(p + "no dead letters", not letters, "; ".join("%s x%d: %s" % (r["kind"], r["n"], r["error"]) for r in letters))

    # What the SMTP server and the application actually received.
    sent = {(r["message_id"] or "").strip("<>"): r for r in db.rows(
        url, "SELECT id, message_id, template, recipient FROM emails WHERE status = 'sent'")}
    received = collections.Counter((m.get("message_id") or "").strip("<>") for m in phase.sink.messages())
    lost = [m for m in sent if m not in received]
    unknown = [m for m in received if m not in sent]
    check(p + "every email marked sent reached the SMTP server (%d)" % len(sent), not lost,
          "%d never received, e.g. %s" % (len(lost), lost[:3]))
    check(p + "the SMTP server got no email the database does not know as sent", not unknown,
          "%d, e.g. %s" % (len(unknown), unknown[:3]))
    dup_mail = {m: n for m, n in received.items() if n > 1}
    say("  REPORT duplicate emails (same Message-ID received more than once): %d messages, %d extra copies%s" % (
        len(dup_mail), sum(n - 1 for n in dup_mail.values()),
        (": " + ", ".join("%s x%d (%s)" % (m, n, sent.get(m, {}).get("template")) for m, n in sorted(dup_mail.items())[:8]))
        if dup_mail else ""))

    delivered = {r["id"] for r in db.rows(url, "SELECT id FROM app_notifications WHERE status = 'delivered'")}
    got = collections.Counter(r[0] for r in phase.app.received)
    bad_sig = [r[0] for r in phase.app.received if not r[2]]
    check(p + "every notice marked delivered reached the application (%d)" % len(delivered),
          all(d in got for d in delivered), "%d never received" % sum(1 for d in delivered if d not in got))
    check(p + "every notice carried a valid signature", not bad_sig, "%d invalid, e.g. %s" % (len(bad_sig), bad_sig[:3]))
    dup_notice = {m: n for m, n in got.items() if n > 1}
    say("  REPORT duplicate notices (same webhook-id received more than once): %d notices, %d extra copies" % (
        len(dup_notice), sum(n - 1 for n in dup_notice.values())))
    phase.duplicates = (dup_mail, dup_notice)

    check(p + "each wave applied (and dunning steps taken) within %ds" % suite.cfg["gate_timeout"],
          all(g[0] for g in phase.gates), "gave up waiting for wave %s" % [n for n, g in enumerate(phase.gates) if not g[0]])
    check(p + "everything settled within %ds after traffic and faults" % suite.cfg["settle_timeout"], phase.settled,
          "left: %s" % phase.settle_left)
    check(p + "no process exited by itself", not phase.unexpected_exits, "; ".join(
        "%s %s exit %s: %s" % (rel(t), n, c, " | ".join(l[-200:] for l in tail))
        for t, n, c, tail in phase.unexpected_exits[:3]))
