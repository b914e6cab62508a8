"""`python -m casework_notifications [serve | projections | rebuild NAME]`."""

from casework.service import service_main

from casework_notifications.bootstrap import PORT, build

if __name__ == "__main__":
    raise SystemExit(
        service_main(
            "notifications",
            PORT,
            "casework_notifications.bootstrap:create_app",
            lambda settings: build(settings).runtime,
        )
    )
