"""`python -m casework_contacts`: serve the contacts service."""

from casework.service import serve
from casework.settings import Settings

from casework_contacts.bootstrap import PORT

if __name__ == "__main__":
    serve("casework_contacts.bootstrap:create_app", Settings.for_service("contacts", PORT))
