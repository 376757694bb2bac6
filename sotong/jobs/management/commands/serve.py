"""`sotong serve`: the web server, a worker, the IMAP IDLE watcher and (unless SOTONG_DEMO=0)
the demo feed, in one foreground command that stops them all on Ctrl-C.

Written by hand rather than with a Procfile runner because it is a few lines and it must
decide at start which processes to run; production deployments run `gunicorn`,
`sotong worker` and `sotong mail-idle` under their own process manager instead.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start web server, worker and demo feed together (the embedded mode of `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("SOTONG_BIND", "127.0.0.1:8000"))
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("SOTONG_WEB_WORKERS", 2))
        )

    def handle(self, *args, bind: str, web_workers: int, **options):
        bin_dir = os.path.dirname(sys.executable)
        commands = {
            "web": [
                os.path.join(bin_dir, "gunicorn"),
                "sotong.wsgi",
                "--bind",
                bind,
                "--workers",
                str(web_workers),
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
            "worker": [sys.executable, "-m", "sotong.cli", "worker"],
            # New mail at once where the server offers IMAP IDLE; idle without accounts.
            "mail-idle": [sys.executable, "-m", "sotong.cli", "mail-idle"],
        }
        env = dict(os.environ)
        if os.environ.get("SOTONG_DEMO", "1") != "0":
            # Demo messages are posted to the webhooks as the platforms would post them,
            # and no answer leaves this machine (unless SOTONG_LOCAL_OUTBOX=0 says so).
            commands["demo"] = [
                *(sys.executable, "-m", "sotong.cli", "feed-demo", "--loop"),
                *("--post-to", f"http://{bind}"),
            ]
            env.setdefault("SOTONG_LOCAL_OUTBOX", "1")
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        self.stdout.write(
            f"Sotong is running at http://{bind}/ ({', '.join(processes)}); Ctrl-C stops it."
        )
        self.stdout.write(f"Database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
        if env.get("SOTONG_LOCAL_OUTBOX", "0") not in {"", "0", "false", "no", "off"}:
            self.stdout.write(
                "Local outbox: answers are recorded, not sent to any platform "
                "(/work/outbox/; SOTONG_LOCAL_OUTBOX=0 to send)."
            )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping")
                        stopping = True
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
