"""`python -m casework_supervision`: serve the supervision service."""

from casework.service import serve
from casework.settings import Settings

from casework_supervision.bootstrap import PORT

if __name__ == "__main__":
    serve("casework_supervision.bootstrap:create_app", Settings.for_service("supervision", PORT))
