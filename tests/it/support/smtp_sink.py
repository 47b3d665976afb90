"""An SMTP sink for tend's tests: aiosmtpd writing every accepted message into a maildir.

Options: --port, --dir (maildir), optional --tlscert/--tlskey (STARTTLS required), optional --user/--password
(AUTH required; a wrong login gets 535), optional --delay SECONDS (a slow server: each RCPT waits that long
before it is accepted, so a client killed meanwhile has sent nothing). Prints "ready" once listening; runs until
killed.
"""
import argparse
import asyncio
import signal
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--dir", required=True)
p.add_argument("--tlscert")
p.add_argument("--tlskey")
p.add_argument("--user")
p.add_argument("--password")
p.add_argument("--delay", type=float, default=0.0)
a = p.parse_args()


class SlowMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await asyncio.sleep(a.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == a.user.encode()
        and auth_data.password == a.password.encode()
    )
    return AuthResult(success=ok, handled=False)


tls = None
if a.tlscert:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(a.tlscert, a.tlskey)

controller = Controller(
    SlowMailbox(a.dir) if a.delay > 0 else Mailbox(a.dir),
    hostname="127.0.0.1",
    port=a.port,
    tls_context=tls,
    require_starttls=tls is not None,
    authenticator=authenticator if a.user else None,
    auth_required=bool(a.user),
    auth_require_tls=tls is not None,
)
controller.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
controller.stop()
