"""Printing with times relative to the suite's start, and settings shared by the modules."""
import time

START = time.time()

SMTP_TIMEOUT = 5  # BILLHOOK_SMTP_TIMEOUT given to the workers, in seconds
# How long past SMTP_TIMEOUT a client may keep a silent connection: recording the failed
# attempt takes the database, which may be restarting then (seen: 9.6 s in all on a loaded
# machine). A send with no deadline holds it for the whole silent window (longer).
SMTP_SLACK = 10


def rel(t):
    return "+%6.1fs %s" % (t - START, time.strftime("%H:%M:%S", time.localtime(t)))


def say(*parts):
    print(" ".join(str(p) for p in parts), flush=True)
