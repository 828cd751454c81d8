"""A real SMTP server for Billhook's tests: accepts every message on 127.0.0.1:PORT and writes
each one to DIR as NNNNNN.eml (raw) and NNNNNN.json (envelope, headers, decoded text and HTML
parts). Python 3 standard library only (asyncio and email), so it runs on any Python 3.8+.

It speaks the part of RFC 5321 a client needs: EHLO/HELO, MAIL, RCPT, DATA (with dot
unstuffing), RSET, NOOP, QUIT, and AUTH PLAIN when started with USER:PASSWORD (then MAIL
needs it first: 530; wrong credentials: 535). No TLS: tests connect with TLS off. Like a real
server it refuses a mailbox it does not have, for every address in the reserved `.invalid`
domain (RFC 2606): `550 5.1.1`, a permanent failure.

Two misbehaving modes, for tests of deadlines: `--mode=silent` accepts connections and never
says a word (not even the greeting); `--mode=silent-after-data` accepts every message, then
never answers QUIT and keeps the connection open.

usage: python3 sink.py [--mode=silent|silent-after-data] PORT DIR [USER:PASSWORD]
"""
import base64
import asyncio
import email
import email.policy
import json
import os
import sys


class Sink:
    def __init__(self, directory, credentials=None, mode=None):
        self.directory = directory
        self.credentials = credentials
        self.mode = mode
        self.count = 0

    def store(self, mail_from, rcpt_to, data, user):
        self.count += 1
        stem = os.path.join(self.directory, "%06d" % self.count)
        with open(stem + ".eml", "wb") as f:
            f.write(data)
        message = email.message_from_bytes(data, policy=email.policy.default)
        parts = {}
        images = []
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
            elif part.get_content_maintype() == "image":
                images.append({
                    "content_type": part.get_content_type(),
                    "content_id": str(part["Content-ID"]) if part["Content-ID"] else None,
                    "disposition": part.get_content_disposition(),
                    "base64": base64.b64encode(part.get_content()).decode("ascii"),
                })
        summary = {
            "mail_from": mail_from,
            "auth_user": user,
            "rcpt_to": rcpt_to,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "reply_to": str(message["Reply-To"]) if message["Reply-To"] else None,
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "images": images,
        }
        # Written last and renamed, so a reader never sees half a summary.
        with open(stem + ".json.tmp", "w") as f:
            json.dump(summary, f)
        os.rename(stem + ".json.tmp", stem + ".json")

    async def session(self, reader, writer):
        # A client that gives up (a deadline) resets the connection: that ends its session,
        # nothing more.
        try:
            await self.converse(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def converse(self, reader, writer):
        def reply(line):
            writer.write((line + "\r\n").encode())

        mail_from, rcpt_to, user = None, [], None
        if self.mode == "silent":
            await reader.read()  # until the client gives up and closes
            return
        reply("220 billhook-test-sink ESMTP")
        while True:
            await writer.drain()
            line = await reader.readline()
            if not line:
                break
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-billhook-test-sink" if verb == "EHLO" else "250 billhook-test-sink")
                if verb == "EHLO":
                    reply("250-8BITMIME")
                    if self.credentials:
                        reply("250-AUTH PLAIN")
                    reply("250 SMTPUTF8")
            elif verb == "AUTH":
                parts = command.split(" ")
                if len(parts) == 3 and parts[1].upper() == "PLAIN":
                    fields = base64.b64decode(parts[2]).split(b"\0")
                    given = (fields[1].decode(), fields[2].decode()) if len(fields) == 3 else None
                    if self.credentials and given == self.credentials:
                        user = given[0]
                        reply("235 2.7.0 Authentication successful")
                    else:
                        reply("535 5.7.8 Authentication credentials invalid")
                else:
                    reply("504 5.5.4 Unrecognized authentication type")
            elif verb == "MAIL" and self.credentials and user is None:
                reply("530 5.7.0 Authentication required")
            elif verb == "MAIL":
                mail_from, rcpt_to = command.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                reply("250 OK")
            elif verb == "RCPT":
                recipient = command.split(":", 1)[1].strip().split(" ")[0].strip("<>")
                if recipient.lower().endswith(".invalid"):
                    reply("550 5.1.1 <%s>: mailbox unavailable" % recipient)
                else:
                    rcpt_to.append(recipient)
                    reply("250 OK")
            elif verb == "DATA":
                reply("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                lines = []
                while True:
                    data_line = await reader.readline()
                    if data_line in (b".\r\n", b".\n", b""):
                        break
                    if data_line.startswith(b".."):
                        data_line = data_line[1:]
                    lines.append(data_line)
                self.store(mail_from, rcpt_to, b"".join(lines), user)
                reply("250 OK: queued as %06d" % self.count)
                mail_from, rcpt_to = None, []
            elif verb == "RSET":
                mail_from, rcpt_to = None, []
                reply("250 OK")
            elif verb == "NOOP":
                reply("250 OK")
            elif verb == "QUIT" and self.mode == "silent-after-data":
                await reader.read()
                break
            elif verb == "QUIT":
                reply("221 Bye")
                await writer.drain()
                break
            else:
                reply("502 Command not implemented")


async def main(port, directory, credentials, mode):
    os.makedirs(directory, exist_ok=True)
    sink = Sink(directory, credentials, mode)
    server = await asyncio.start_server(sink.session, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--mode=")]
    modes = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--mode=")]
    mode = modes[-1] if modes else None
    if mode not in (None, "silent", "silent-after-data"):
        sys.exit("unknown mode %r" % mode)
    credentials = tuple(args[2].split(":", 1)) if len(args) > 2 else None
    asyncio.run(main(int(args[0]), args[1], credentials, mode))
