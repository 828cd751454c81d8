"""The faults, injected at random moments while events flow, in three lanes that run side by
side: worker kills; PostgreSQL restarts (immediate, fast) and terminated connections; SMTP
down, SMTP silent, application down. Each lane runs its faults one after another with random
gaps; after each, the lane measures how long the system took to catch up (bounded), before the
next. Every lane goes on past the end of traffic until each of its fault types has run once.
"""
import random
import threading
import time

import db
from services import SilentSmtp
from util import rel

DB_FAULTS = ["pg_immediate", "pg_fast", "pg_terminate"]
OUT_FAULTS = ["smtp_down", "app_down"]


class Faults:
    def __init__(self, phase, suite):
        self.phase, self.suite, self.cfg = phase, suite, suite.cfg
        self.injected = []  # (time, kind, text)
        self.recoveries = []  # dict(kind, at, back, pending, secs, what)
        self.silent = []  # (connections, longest client wait, [ages of connections still held])
        self.done = set()
        self.traffic_over = threading.Event()
        self.lock = threading.Lock()
        self.threads = []

    def note(self, kind, text, t=None):
        t = t or time.time()
        with self.lock:
            self.injected.append((t, kind, text))
            self.done.add(kind)
        print("  %s FAULT %s" % (rel(t), text), flush=True)

    def start(self):
        for lane in (self.kill_lane, self.db_lane, self.outbound_lane):
            t = threading.Thread(target=self.guard, args=(lane,), daemon=True)
            t.start()
            self.threads.append(t)

    def guard(self, lane):
        try:
            lane()
        except Exception as e:  # noqa: BLE001 - a broken lane is a failed check, not a hang
            self.note("lane_error", "fault lane %s failed: %s: %s" % (lane.__name__, type(e).__name__, e))

    def finish(self):
        self.over_at = time.monotonic()
        self.traffic_over.set()
        for t in self.threads:
            t.join(timeout=self.cfg["recovery_bound"] * 4 + 120)

    def keep_going(self, kinds):
        """Until traffic is over and each of `kinds` ran once (or the suite is stopping)."""
        if self.suite.stopping.is_set():
            return False
        if self.traffic_over.is_set() and time.monotonic() - self.over_at > self.cfg["recovery_bound"] * 2:
            return False  # bounded: a kind that could not run by now is reported missing
        return not (self.traffic_over.is_set() and all(k in self.done for k in kinds))

    def pause(self, gap):
        return not self.suite.stopping.wait(random.uniform(*gap))

    # Lanes.

    def kill_lane(self):
        while self.keep_going(["kill_worker"]) and self.pause(self.cfg["kill_gap"]):
            workers = [w for w in self.phase.workers if w.alive()]
            if not workers:
                continue
            victims = random.sample(workers, 2 if len(workers) > 1 and random.random() < 0.25 else 1)
            for w in victims:
                pid = w.proc.pid
                w.kill()
                self.note("kill_worker", "SIGKILL %s (pid %d)" % (w.name, pid))
            time.sleep(random.uniform(0.3, 2.0))
            for w in victims:
                self.phase.restart_worker(w)

    def db_lane(self):
        bag = []
        while self.keep_going(DB_FAULTS) and self.pause(self.cfg["db_gap"]):
            if not bag:
                bag = random.sample(DB_FAULTS, len(DB_FAULTS))
            kind = bag.pop()
            t = time.time()
            if kind == "pg_terminate":
                n = db.try_scalar(self.suite.pg.url(), (
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = 'billhook_%s' AND pid <> pg_backend_pid()") % self.phase.name)
                self.note(kind, "pg_terminate_backend of every connection to the database (%s terminated)" % n, t)
                back = time.time()
            else:
                mode = "immediate" if kind == "pg_immediate" else "fast"
                out = self.suite.pg.restart(mode)
                back = time.time()
                self.note(kind, "PostgreSQL restarted with -m %s (down %.1fs%s)" % (
                    mode, back - t, "" if out.returncode == 0 else ", pg_ctl: " + out.stderr.strip()[-120:]), t)
            self.measure(kind, t, back, "events not applied",
                         "SELECT count(*) FROM webhook_events WHERE status NOT IN ('applied','ignored','stale') AND received_at <= to_timestamp(%f)",
                         "SELECT count(*) FROM webhook_events WHERE status IN ('applied','ignored','stale') AND received_at > to_timestamp(%f)")

    def outbound_lane(self):
        # Emails and notices start with wave 1 (wave 0 holds customers only); the silent
        # server goes first, while emails surely flow.
        while not self.phase.wave1_started.wait(0.5):
            if self.suite.stopping.is_set():
                return
        bag = ["smtp_silent"]
        while self.keep_going(OUT_FAULTS + ["smtp_silent"]) and self.pause(self.cfg["out_gap"]):
            if not bag:
                bag = random.sample(OUT_FAULTS + ["smtp_silent"], 3)
            kind = bag.pop(0)
            t = time.time()
            sink, app = self.phase.sink, self.phase.app
            if kind == "smtp_down":
                sink.stop()
                self.note(kind, "SMTP server down for %ds" % self.cfg["outage"], t)
                self.suite.stopping.wait(self.cfg["outage"])
                sink.start()
            elif kind == "smtp_silent":
                sink.stop()
                silent = SilentSmtp(sink.port)
                silent.start()
                self.note(kind, "SMTP port accepts and stays silent for %ds" % self.cfg["silent"], t)
                self.suite.stopping.wait(self.cfg["silent"])
                result = silent.stop()
                self.silent.append(result)
                sink.start()
                if not result[0]:
                    # Nothing tried to send: not exercised; it is to run again.
                    with self.lock:
                        self.done.discard(kind)
                    bag.append(kind)
                print("  %s       silent SMTP: %d connections; longest a client waited before giving up: %.1fs; "
                      "still waiting when it ended: %d (oldest %.1fs)" % (
                          rel(time.time()), result[0], result[1], len(result[2]),
                          max(result[2]) if result[2] else 0), flush=True)
            else:
                app.stop()
                self.note(kind, "application endpoint down for %ds" % self.cfg["outage"], t)
                self.suite.stopping.wait(self.cfg["outage"])
                app.start()
            back = time.time()
            if kind == "app_down":
                self.measure(kind, t, back, "notices pending",
                             "SELECT count(*) FROM app_notifications WHERE status = 'pending' AND created_at <= to_timestamp(%f)")
            else:
                self.measure(kind, t, back, "emails pending",
                             "SELECT count(*) FROM emails WHERE status = 'pending' AND created_at <= to_timestamp(%f)")

    def measure(self, kind, t, back, what, query, new_query=None):
        """Seconds from `back` (the service back) until nothing of `what` from before `back`
        is left (None when the bound passed first); with `new_query`, also until the first
        event received after `back` is applied (the whole path works again)."""
        rec = dict(kind=kind, at=t, back=back, pending=None, secs=None, what=what, first_new=None)
        begin = time.monotonic()
        while time.monotonic() - begin < self.cfg["recovery_bound"] and not self.suite.stopping.is_set():
            if rec["secs"] is None:
                n = db.try_scalar(self.phase.url, query % back)
                if rec["pending"] is None and n is not None:
                    rec["pending"] = n
                if n == 0:
                    rec["secs"] = time.time() - back
            if new_query and rec["first_new"] is None:
                if (db.try_scalar(self.phase.url, new_query % back) or 0) > 0:
                    rec["first_new"] = time.time() - back
            if rec["secs"] is not None and (not new_query or rec["first_new"] is not None
                                            or self.traffic_over.is_set()):
                break
            time.sleep(0.2)
        with self.lock:
            self.recoveries.append(rec)
        print("  %s       recovered: %s" % (rel(time.time()), describe(rec, self.cfg)), flush=True)


def describe(rec, cfg):
    if rec["secs"] is None:
        return "%s: %s of %s still left %ds after the service was back (bound)" % (
            rec["kind"], rec["what"], rec["pending"], cfg["recovery_bound"])
    text = "%s: %s when the service was back: %s, none left %.1fs later" % (
        rec["kind"], rec["what"], rec["pending"], rec["secs"])
    if rec.get("first_new") is not None:
        text += "; first event received after it applied %.1fs after" % rec["first_new"]
    return text
