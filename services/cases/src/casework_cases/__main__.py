"""`python -m casework_cases`: serve the cases service."""

from casework.service import serve
from casework.settings import Settings

from casework_cases.bootstrap import PORT

if __name__ == "__main__":
    serve("casework_cases.bootstrap:create_app", Settings.for_service("cases", PORT))
