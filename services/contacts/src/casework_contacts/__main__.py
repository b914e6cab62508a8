"""`python -m casework_contacts [serve | projections | rebuild NAME]`."""

from casework.service import service_main

from casework_contacts.bootstrap import PORT, build

if __name__ == "__main__":
    raise SystemExit(
        service_main(
            "contacts",
            PORT,
            "casework_contacts.bootstrap:create_app",
            lambda settings: build(settings).runtime,
        )
    )
