"""Billhook's fault suite (run it through scripts/chaos.sh): the same stream of Stripe events
is sent twice, once into a database with no faults (the baseline) and once while faults are
injected, and the second run must end exactly like the first. See scripts/chaos/README.md.

The last line printed is `N passed, N failed`; the exit code is 1 when a check failed.
"""
import argparse
import base64
import collections
import concurrent.futures
import hashlib
import hmac
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import db  # noqa: E402
from faults import Faults  # noqa: E402
from services import AppEndpoint, Postgres, Process, SmtpSink, free_port  # noqa: E402
from report import report  # noqa: E402
from stream import Stream  # noqa: E402
from util import SMTP_TIMEOUT, rel, say  # noqa: E402

MODES = {
    # rounds: stories = rounds x 10; windows in seconds.
    "quick": dict(rounds=6, workers=2, window=90, gate_timeout=60,
                  settle_timeout=75, recovery_bound=45, outage=8, silent=20, kill_gap=(6, 12),
                  db_gap=(4, 10), out_gap=(3, 7), delivery_deadline=120, threads=12),
    "default": dict(rounds=24, workers=3, window=420, gate_timeout=120,
                    settle_timeout=180, recovery_bound=90, outage=25, silent=40,
                    kill_gap=(8, 25), db_gap=(15, 45), out_gap=(15, 40), delivery_deadline=300,
                    threads=16),
}


class Interrupted(Exception):
    pass


def last_words(lines):
    """What a process said before it died: a panic and its message, else its last lines."""
    for n, line in enumerate(lines):
        if "panicked at" in line:
            return " ".join(lines[n:n + 2])[:400]
    return " | ".join(line[:200] for line in lines[-3:])


class Sender:
    """Delivers events as Stripe does: signed at send time, and any answer other than 2xx (or
    no answer) is retried with backoff until 2xx or the deadline."""

    def __init__(self, port, secret, stream, deadline, stopping):
        self.port, self.secret, self.stream = port, secret.encode(), stream
        self.deadline, self.stopping = deadline, stopping
        self.lock = threading.Lock()
        self.answers = []  # (time, event id, status: int or "conn:<error>")
        self.accepted = {}  # event id -> time of its first 2xx
        self.given_up = set()

    def post(self, event_id):
        body = self.stream.bodies[event_id]
        t = int(time.time())
        mac = hmac.new(self.secret, ("%d." % t).encode() + body, hashlib.sha256).hexdigest()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("POST", "/api/webhooks/stripe", body, {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": "t=%d,v1=%s" % (t, mac)})
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException) as e:
            return "conn:" + type(e).__name__
        finally:
            conn.close()

    def deliver(self, event_id):
        start, delay = time.monotonic(), 0.5
        while not self.stopping.is_set():
            status = self.post(event_id)
            now = time.time()
            with self.lock:
                self.answers.append((now, event_id, status))
                if isinstance(status, int) and 200 <= status < 300:
                    self.accepted.setdefault(event_id, now)
                    return True
            if time.monotonic() - start > self.deadline:
                break
            time.sleep(delay * random.uniform(0.7, 1.3))
            delay = min(delay * 2, 4)
        with self.lock:
            self.given_up.add(event_id)
        return False

    def send(self, ids, window, threads):
        """Sends `ids` in order, spread evenly over `window` seconds (0: at once)."""
        begin = time.monotonic()
        step = window / max(len(ids), 1)

        def task(n, event_id):
            wait = begin + n * step - time.monotonic()
            if wait > 0 and self.stopping.wait(wait):
                return
            self.deliver(event_id)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(task, n, e) for n, e in enumerate(ids)]:
                f.result()

    def status_counts(self):
        with self.lock:
            return collections.Counter(a[2] for a in self.answers)

    def first_2xx_after(self, t):
        with self.lock:
            later = [a[0] for a in self.answers
                     if a[0] >= t and isinstance(a[2], int) and 200 <= a[2] < 300]
        return min(later) if later else None


class Phase:
    """One run of the stream against its own database, receiver, workers, SMTP sink and
    application endpoint."""

    def __init__(self, suite, name, with_faults):
        self.suite, self.name, self.with_faults = suite, name, with_faults
        self.cfg = suite.cfg
        self.dir = os.path.join(suite.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.url = suite.pg.url("billhook_" + name)
        self.workers = []
        self.receiver = None
        self.unexpected_exits = []
        self.notify_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.webhook_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.smtp_port = free_port()
        self.sink = SmtpSink(suite.sink_script, self.smtp_port, os.path.join(self.dir, "mail"),
                             os.path.join(self.dir, "smtp.log"))
        self.app = AppEndpoint(free_port(), self.notify_secret)
        self.receiver_port = free_port()
        self.sender = Sender(self.receiver_port, self.webhook_secret, suite.stream,
                             self.cfg["delivery_deadline"], suite.stopping)
        self.wave1_started = threading.Event()

    def env(self, **extra):
        # Nothing from the caller's own Billhook configuration leaks in.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BILLHOOK_", "OTEL_")) and k != "DATABASE_URL"}
        env.update(DATABASE_URL=self.url, BILLHOOK_LOG="info", BILLHOOK_LOG_FORMAT="json")
        env.update(extra)
        return env

    def setup(self):
        s = self.suite
        db.sql(s.pg.url(), "CREATE DATABASE billhook_%s" % self.name)
        out = s.run([s.bin("billhook-worker"), "migrate"], self.env(),
                    os.path.join(self.dir, "migrate.log"))
        if out != 0:
            raise RuntimeError("billhook-worker migrate failed (%s/migrate.log)" % self.dir)
        # The application creates its orders before sending customers to pay, as
        # `billhook-worker orders create --reference R --checkout-ref ID` does.
        values = ",".join("('%s', '%s')" % o for o in s.stream.orders)
        db.sql(self.url, "INSERT INTO orders (reference, checkout_ref) VALUES " + values)
        self.sink.start()
        self.app.start()
        admin = free_port()
        self.receiver = self.spawn("receiver", [s.bin("billhook-receiver")], self.env(
            BILLHOOK_WEBHOOK_SECRETS="chaos=" + self.webhook_secret,
            BILLHOOK_RECEIVER_LISTEN="127.0.0.1:%d" % self.receiver_port,
            BILLHOOK_RECEIVER_ADMIN_LISTEN="127.0.0.1:%d" % admin,
            BILLHOOK_PROCESS_EVENT_MAX_ATTEMPTS="40"))
        for n in range(self.cfg["workers"]):
            self.workers.append(self.spawn("worker-%d" % (n + 1), [s.bin("billhook-worker"), "run"],
                                           self.worker_env()))
        if not self.ready(admin, 60):
            dead = [p for p in [self.receiver] + self.workers if not p.alive()]
            detail = "; ".join("%s exited (code %s): %s" % (p.name, p.proc.returncode, last_words(p.log_tail(80)))
                               for p in dead)
            raise RuntimeError("the receiver did not become ready: %s (logs in %s)" % (detail or "timeout", self.dir))

    def worker_env(self):
        return self.env(
            BILLHOOK_WORKER_ADMIN_LISTEN="127.0.0.1:%d" % free_port(),
            BILLHOOK_CONSOLE_LISTEN="127.0.0.1:%d" % free_port(),
            BILLHOOK_SMTP_HOST="127.0.0.1", BILLHOOK_SMTP_PORT=str(self.smtp_port),
            BILLHOOK_SMTP_TLS="none", BILLHOOK_SMTP_TIMEOUT="%ds" % SMTP_TIMEOUT,
            BILLHOOK_EMAIL_FROM="Billing <billing@example.com>",
            BILLHOOK_NOTIFY_URL="http://127.0.0.1:%d/notices" % self.app.port,
            BILLHOOK_NOTIFY_SECRET=self.notify_secret, BILLHOOK_NOTIFY_TIMEOUT="5s",
            BILLHOOK_RETRY_BASE="1s", BILLHOOK_RETRY_MAX="5s",
            # Steps 0-2 come due at once (event times are in the past); the cancellation,
            # which needs Stripe's API, 30 days later: never during the suite.
            BILLHOOK_DUNNING_SCHEDULE="0s,3s,6s,30d",
            BILLHOOK_EMAIL_PAYMENT_FAILED_HOLD="2s",
            BILLHOOK_WORKER_HEARTBEAT_INTERVAL="2s", BILLHOOK_WORKER_MISSED_HEARTBEATS="3",
            BILLHOOK_WORKER_SHUTDOWN_TIMEOUT="5s",
            BILLHOOK_EMAIL_MAX_ATTEMPTS="40", BILLHOOK_NOTIFY_MAX_ATTEMPTS="40",
            BILLHOOK_DUNNING_MAX_ATTEMPTS="40")

    def spawn(self, name, argv, env):
        p = Process(name, argv, env, os.path.join(self.dir, name + ".log")).start()
        self.suite.remember(p.proc.pid)
        return p

    def restart_worker(self, w):
        w.start()
        self.suite.remember(w.proc.pid)

    def ready(self, port, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not all(p.alive() for p in [self.receiver] + self.workers):
                return False
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def watch_processes(self):
        """A supervisor's job: a process that exits on its own is noted (a failure) and
        started again, so the rest of the run still means something."""
        for p in [self.receiver] + self.workers:
            if p.proc is not None and not p.alive() and not p.expected_exit:
                code = p.proc.returncode
                self.unexpected_exits.append((time.time(), p.name, code, p.log_tail(3)))
                say("  %s %s exited by itself (code %s); restarting it" % (rel(time.time()), p.name, code))
                self.restart_worker(p)

    def run(self):
        s = self.suite
        stream = s.stream
        faults = Faults(self, s) if self.with_faults else None
        watcher = threading.Thread(target=self.watch_loop, daemon=True)
        self.watching = True
        watcher.start()
        if faults:
            faults.start()
        self.t_start = time.time()
        total = sum(len(w) for w in stream.waves)
        self.gates = []
        for n, wave in enumerate(stream.waves):
            if n == 1:
                self.wave1_started.set()
            window = self.cfg["window"] * len(wave) / total if faults else 0
            self.sender.send(wave, window, self.cfg["threads"])
            if n < len(stream.waves) - 1:
                self.gates.append(self.wait_for_wave(n))
        self.t_sent = time.time()
        if faults:
            faults.finish()  # waits for every fault type to have run, then for the lanes
        self.t_faults_over = time.time()
        self.settled, self.settle_secs, self.settle_left = self.settle()
        self.watching = False
        watcher.join()
        self.faults = faults

    def watch_loop(self):
        while self.watching and not self.suite.stopping.is_set():
            self.watch_processes()
            time.sleep(1)

    def wait_for_wave(self, n):
        """The next wave goes out once waves up to n are applied (and after wave 1, every
        dunning run took its timed steps). Returns (passed, seconds waited)."""
        begin = time.monotonic()
        ids = [e for w in self.suite.stream.distinct[: n + 1] for e in w]
        runs = self.suite.stream.dunning_runs if n >= 1 else 0
        while time.monotonic() - begin < self.cfg["gate_timeout"] and not self.suite.stopping.is_set():
            finished = db.try_scalar(self.url, "SELECT count(*) FROM webhook_events WHERE status IN ('applied','ignored','stale')")
            stepped = db.try_scalar(self.url, "SELECT count(*) FROM dunning_runs WHERE steps_done >= 3") if runs else 0
            if finished is not None and finished >= len(ids) and stepped == runs:
                return True, time.monotonic() - begin
            time.sleep(0.5)
        return False, time.monotonic() - begin

    PENDING = {
        "events not applied": "SELECT count(*) FROM webhook_events WHERE status NOT IN ('applied','ignored','stale')",
        "emails pending": "SELECT count(*) FROM emails WHERE status = 'pending'",
        "notices pending": "SELECT count(*) FROM app_notifications WHERE status = 'pending'",
        "jobs due": "SELECT count(*) FROM apalis.jobs WHERE status IN ('Pending','Queued','Running') AND run_at < now() + interval '1 minute'",
    }

    def settle(self):
        begin = time.monotonic()
        left = {}
        while time.monotonic() - begin < self.cfg["settle_timeout"] and not self.suite.stopping.is_set():
            left = {k: db.try_scalar(self.url, q) for k, q in self.PENDING.items()}
            if all(v == 0 for v in left.values()):
                return True, time.monotonic() - begin, left
            time.sleep(0.5)
        return False, time.monotonic() - begin, left

    def stop(self):
        for p in self.workers + [self.receiver]:
            if p:
                p.stop(10)
        self.sink.stop()
        self.app.stop()


class Suite:
    def __init__(self, args):
        self.args = args
        self.cfg = dict(MODES["quick" if args.quick else "default"])
        if args.workers:
            self.cfg["workers"] = args.workers
        self.dir = args.dir
        self.root = args.root
        self.sink_script = os.path.join(self.root, "crates/billhook-testkit/smtp/sink.py")
        self.stopping = threading.Event()
        self.pids_file = os.path.join(self.dir, "pids")
        self.checks = []
        self.phases = []
        self.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        random.seed(self.seed)
        # Every event time in the past (dunning runs start at their failure's event time).
        t0 = int(time.time()) - 6 * 3600
        self.stream = Stream(os.path.join(self.root, "crates/billhook-testkit/fixtures/stripe"),
                             self.cfg["rounds"], self.seed, t0)
        self.pg = Postgres(os.path.join(self.dir, "pg"))

    def bin(self, name):
        return os.path.join(self.root, "target/debug", name)

    def remember(self, pid):
        with open(self.pids_file, "a") as f:
            f.write("%d\n" % pid)

    def run(self, argv, env, log):
        with open(log, "ab") as f:
            return subprocess.run(argv, env=env, stdout=f, stderr=f, timeout=180).returncode

    def check(self, name, ok, detail=""):
        self.checks.append((name, bool(ok), detail))

    def main(self):
        say("Billhook fault suite: %s mode, seed %d, %d stories, %d distinct events, %d deliveries planned, %d workers"
            % ("quick" if self.args.quick else "default", self.seed, len(self.stream.stories),
               len(self.stream.bodies), sum(len(w) for w in self.stream.waves),
               self.cfg["workers"]))
        say("run directory (logs):", self.dir)
        self.pg.create()
        self.pg.start()
        with open(os.path.join(self.dir, "pgdata"), "w") as f:
            f.write(self.pg.data + "\n")
        say("%s private PostgreSQL on 127.0.0.1:%d" % (rel(time.time()), self.pg.port))
        for name, with_faults in (("baseline", False), ("chaos", True)):
            phase = Phase(self, name, with_faults)
            self.phases.append(phase)
            say("%s %s: starting (receiver, %d workers, SMTP sink, application endpoint)"
                % (rel(time.time()), name, self.cfg["workers"]))
            phase.setup()
            say("%s %s: sending" % (rel(time.time()), name))
            try:
                phase.run()
            finally:
                phase.stop()
            say("%s %s: done (sent in %.0fs, settled %s in %.0fs)"
                % (rel(time.time()), name, phase.t_sent - phase.t_start,
                   "fully" if phase.settled else "NOT", phase.settle_secs))
        return report(self)

    def stop_all(self):
        self.stopping.set()
        for phase in self.phases:
            try:
                phase.stop()
            except Exception:  # noqa: BLE001 - cleanup goes on whatever failed
                pass
        self.pg.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args()

    suite = Suite(args)

    def interrupt(signum, frame):
        if suite.stopping.is_set():
            return  # already on the way out
        # Every loop and sleep of the suite watches this; set it before unwinding, so that
        # thread pools being left wait for nothing.
        suite.stopping.set()
        raise Interrupted("signal %d" % signum)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        suite.main()
    except Interrupted as e:
        suite.stopping.set()
        say("interrupted (%s): stopping everything this suite started" % e)
        suite.check("the suite ran to its end", False, "interrupted")
        say("logs kept in", suite.dir)
    except Exception as e:  # noqa: BLE001 - reported as a failed check, never a traceback alone
        if not isinstance(e, RuntimeError):  # RuntimeError: a service would not start, said why
            import traceback
            traceback.print_exc()
        suite.check("the suite ran to its end", False, "%s: %s" % (type(e).__name__, e))
        say("FAIL the suite ran to its end: %s: %s" % (type(e).__name__, e))
        say("logs kept in", suite.dir)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        suite.stop_all()
    passed = sum(1 for c in suite.checks if c[1])
    failed = sum(1 for c in suite.checks if not c[1])
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
