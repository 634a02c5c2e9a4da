"""A real SMTP server for the notification tests and `cardguard bench notify` (aiosmtpd): it
prints its port, then one JSON line per message it accepts: when (the machine's monotonic
clock, ns), envelope, decoded headers and body, and the raw message (its bytes as Latin-1
characters).
With --fail-first N it answers 451 (try again later) to the first N messages; with --reject
it refuses every message for good (550)."""
import asyncio, email, email.policy, json, sys, time
from aiosmtpd.smtp import SMTP

fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
reject = "--reject" in sys.argv


class Sink:
    def __init__(self):
        self.seen = 0

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.seen <= fail_first:
            return "451 4.3.0 try again later"
        if reject:
            return "550 5.1.1 no such mailbox"
        at = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        print(json.dumps({
            "at_ns": at,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "body": body.get_content() if body is not None else "",
            "raw": raw.decode("latin-1"),
        }), flush=True)
        return "250 OK"


# Bound to port 0 here, so that no other process can take the port between its choice and
# the bind (the controller of aiosmtpd checks its server by connecting to a given port).
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
handler = Sink()
server = loop.run_until_complete(
    loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
)
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
