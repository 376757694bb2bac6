import signal

from django.core.management.base import BaseCommand

from sotong.channels.mail_idle import MailIdler


class Command(BaseCommand):
    help = (
        "Hold IMAP IDLE on the e-mail accounts so that new mail is polled at once "
        "(accounts whose server offers no IDLE are polled every minute)."
    )

    def handle(self, *args, **options):
        idler = MailIdler()

        def stop(*_):
            idler.stopping.set()

        # `sotong serve` and process managers stop it with SIGTERM: log out cleanly.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            idler.run()
        finally:
            idler.stop()
