"""The processes and servers the fault suite runs, each on 127.0.0.1 and a free port: a
private PostgreSQL cluster, Billhook's binaries, the SMTP sink (crates/billhook-testkit/smtp/
sink.py), an SMTP server that accepts and never greets, and the application's notice endpoint.
Everything started here is remembered and stopped by `Services.stop_all` (the suite calls it
on any exit, Ctrl-C included); processes are stopped by their own id, never by name.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time


def free_port():
    """A port no socket uses, below the kernel's ephemeral range: a port picked inside it
    (as binding to port 0 does) can be taken by a client connection's local end before the
    process that is to listen on it binds it ("Address already in use")."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low <= 21024:
        low = 32768
    for _ in range(100):
        port = random.randrange(20000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def wait_port(port, timeout, banner=False):
    """Until something accepts on the port (and, with banner, says something first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if not banner or s.recv(64):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def find_pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    dirs = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int,
                  reverse=True) if os.path.isdir("/usr/lib/postgresql") else []
    for d in dirs:
        path = "/usr/lib/postgresql/%s/bin/%s" % (d, name)
        if os.access(path, os.X_OK):
            return path
    return None


class Process:
    """One child process with its log file; stop() and kill() act on its pid only."""

    def __init__(self, name, argv, env, log_path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc = None
        self.expected_exit = False

    def start(self):
        log = open(self.log_path, "ab")
        # A session of its own: Ctrl-C in the terminal reaches the suite, which stops the
        # children in order, instead of reaching every child at once.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.expected_exit = False
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.expected_exit = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=10):
        if not self.alive():
            return
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=5):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            return []


class Postgres:
    """A private cluster under DIR: initdb, start, restart (immediate or fast), stop. As root,
    it runs as BILLHOOK_PG_OS_USER (default postgres), as scripts/lib/pg.sh does."""

    def __init__(self, directory):
        self.dir = directory
        self.data = os.path.join(directory, "data")
        self.sock = os.path.join(directory, "sock")
        self.log = os.path.join(directory, "postgres.log")
        self.port = free_port()
        self.initdb = find_pg_bin("initdb")
        self.pg_ctl = find_pg_bin("pg_ctl")
        self.prefix = []
        if os.getuid() == 0:
            user = os.environ.get("BILLHOOK_PG_OS_USER", "postgres")
            self.prefix = ["runuser", "-u", user, "--"]
            self.user = user
        self.running = False

    def url(self, database="postgres"):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def ctl(self, *args, timeout=90):
        return subprocess.run(self.prefix + [self.pg_ctl, "-D", self.data] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def create(self):
        os.makedirs(self.sock, exist_ok=True)
        if self.prefix:
            subprocess.run(["chown", "-R", self.user + ":", self.dir], check=True)
        out = subprocess.run(self.prefix + [self.initdb, "-D", self.data, "-U", "postgres",
                                            "-A", "trust", "-E", "UTF8", "--locale=C",
                                            "--no-sync"], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("initdb failed: " + out.stderr[-500:])

    def options(self):
        # fsync off: the suite kills processes, never the machine; throwaway data.
        return ("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories='%s' "
                "-c fsync=off -c max_connections=300" % (self.port, self.sock))

    def start(self):
        out = self.ctl("-l", self.log, "-w", "-t", "60", "-s", "-o", self.options(), "start")
        if out.returncode != 0:
            raise RuntimeError("pg_ctl start failed: " + out.stderr[-500:])
        self.running = True

    def restart(self, mode):
        return self.ctl("-l", self.log, "-w", "-t", "60", "-s", "-m", mode, "-o",
                        self.options(), "restart")

    def stop(self):
        if self.running:
            self.ctl("-m", "fast", "-w", "-t", "60", "-s", "stop")
            self.running = False


class SmtpSink:
    """sink.py on a fixed port; each start writes to a directory of its own (sink.py numbers
    its files from 1 on every start)."""

    def __init__(self, script, port, directory, log_path):
        self.script, self.port, self.dir, self.log_path = script, port, directory, log_path
        self.incarnation = 0
        self.proc = None

    def start(self):
        self.incarnation += 1
        out = os.path.join(self.dir, "%02d" % self.incarnation)
        os.makedirs(out, exist_ok=True)
        self.proc = Process("smtp", ["python3", self.script, str(self.port), out], None,
                            self.log_path).start()
        if not wait_port(self.port, 15, banner=True):
            raise RuntimeError("the SMTP sink did not start on port %d" % self.port)

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc = None

    def messages(self):
        found = []
        for root, _, files in os.walk(self.dir):
            for name in sorted(files):
                if name.endswith(".json"):
                    with open(os.path.join(root, name)) as f:
                        found.append(json.load(f))
        return found


class SilentSmtp:
    """Accepts TCP connections on the SMTP port and never says a word. Records, for each
    connection, how long the client waited before it gave up (closed)."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.conns = []  # [socket, accepted_at, closed_at or None]
        self.lock = threading.Lock()
        self.stopping = False

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            entry = [conn, time.monotonic(), None]
            with self.lock:
                self.conns.append(entry)
            threading.Thread(target=self.watch, args=(entry,), daemon=True).start()

    def watch(self, entry):
        try:
            while entry[0].recv(4096):
                pass  # a client talking first gets no answer either
        except OSError:
            pass
        if entry[2] is None:
            entry[2] = time.monotonic()

    def stop(self):
        """Closes everything; returns (connections, longest wait a client gave up after,
        connections still held open by their client at the end with their age)."""
        self.stopping = True
        now = time.monotonic()
        if self.sock:
            self.sock.close()
            self.sock = None
        with self.lock:
            conns = list(self.conns)
        given_up = [c[2] - c[1] for c in conns if c[2] is not None]
        held = [now - c[1] for c in conns if c[2] is None]
        for c in conns:
            if c[2] is None:
                c[2] = -1.0  # closed by us, not the client
            try:
                c[0].close()
            except OSError:
                pass
        return len(conns), (max(given_up) if given_up else 0.0), held


class AppEndpoint:
    """The host application's notice endpoint: verifies each notice's Standard Webhooks
    signature, records it and answers 204. stop() closes the listener (connections are then
    refused); start() opens it again on the same port."""

    def __init__(self, port, secret):
        self.port = port
        self.key = base64.b64decode(secret[len("whsec_"):])
        self.received = []  # (webhook-id, type, signature ok, time)
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                wid = self.headers.get("webhook-id", "")
                ts = self.headers.get("webhook-timestamp", "")
                sigs = self.headers.get("webhook-signature", "")
                mac = hmac.new(endpoint.key, ("%s.%s." % (wid, ts)).encode() + body,
                               hashlib.sha256).digest()
                expected = "v1," + base64.b64encode(mac).decode()
                ok = any(hmac.compare_digest(expected, s) for s in sigs.split())
                try:
                    kind = json.loads(body).get("type")
                except ValueError:
                    kind = None
                with endpoint.lock:
                    endpoint.received.append((wid, kind, ok, time.time()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
