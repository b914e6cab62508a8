"""`python -m casework_notifications`: serve the notifications service."""

from casework.service import serve
from casework.settings import Settings

from casework_notifications.bootstrap import PORT

if __name__ == "__main__":
    serve(
        "casework_notifications.bootstrap:create_app", Settings.for_service("notifications", PORT)
    )
