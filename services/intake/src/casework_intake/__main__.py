"""`python -m casework_intake`: serve the intake service."""

from casework.service import serve
from casework.settings import Settings

from casework_intake.bootstrap import PORT

if __name__ == "__main__":
    serve("casework_intake.bootstrap:create_app", Settings.for_service("intake", PORT))
