"""A real SMTP server for Billhook's tests: accepts every message on 127.0.0.1:PORT and writes
each one to DIR as NNNNNN.json (envelope, headers, decoded text and HTML parts) beside the raw
NNNNNN.eml. Python's standard library only (smtpd, deprecated but present up to 3.11).

usage: python3 sink.py PORT DIR
"""
import warnings

warnings.simplefilter("ignore", DeprecationWarning)

import asyncore  # noqa: E402
import email  # noqa: E402
import email.policy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import smtpd  # noqa: E402
import sys  # noqa: E402


class Sink(smtpd.SMTPServer):
    def __init__(self, port, directory):
        super().__init__(("127.0.0.1", port), None, decode_data=False)
        self.directory = directory
        self.count = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.count += 1
        stem = os.path.join(self.directory, "%06d" % self.count)
        with open(stem + ".eml", "wb") as f:
            f.write(data)
        message = email.message_from_bytes(data, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        summary = {
            "mail_from": mailfrom,
            "rcpt_to": rcpttos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "reply_to": str(message["Reply-To"]) if message["Reply-To"] else None,
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        # Written last and renamed, so a reader never sees half a summary.
        with open(stem + ".json.tmp", "w") as f:
            json.dump(summary, f)
        os.rename(stem + ".json.tmp", stem + ".json")
        return None


if __name__ == "__main__":
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    Sink(port, directory)
    print("ready", flush=True)
    asyncore.loop()
